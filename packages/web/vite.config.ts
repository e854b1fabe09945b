import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/**
 * One bundle for both pages (/settings and /admin); the gateway serves its
 * hashed assets under /settings/assets with long-lived caching. No inline
 * scripts or styles, so the pages run under a strict CSP.
 */
export default defineConfig({
  base: "/settings/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    // `npm run dev -w @lobu/web` against a local gateway on port 8080.
    proxy: Object.fromEntries(
      ["/settings/api", "/settings/claim", "/admin/api"].map((p) => [
        p,
        { target: "http://127.0.0.1:8080", changeOrigin: false },
      ]),
    ),
  },
});
