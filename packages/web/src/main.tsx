import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { AdminApp } from "./admin/AdminApp.tsx";
import { SettingsApp } from "./settings/SettingsApp.tsx";
import "./styles.css";

const admin = window.location.pathname.startsWith("/admin");
document.title = admin ? "Admin · Lobu" : "Settings · Lobu";
const root = document.getElementById("root");
if (root) {
  createRoot(root).render(<StrictMode>{admin ? <AdminApp /> : <SettingsApp />}</StrictMode>);
}
