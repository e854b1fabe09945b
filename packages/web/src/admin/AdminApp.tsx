import { bestEffort } from "@lobu/core/best-effort";
import { type KeyboardEvent, useEffect, useMemo, useRef, useState } from "react";
import { ApiError, type Client, createClient, errorText, LOGOUT_UNCONFIRMED } from "../api.ts";
import { type Status, StatusLine } from "../ui.tsx";
import { AccessTab } from "./access.tsx";
import { AgentsTab, AuditTab, SandboxesTab, UsageTab, UsersTab } from "./tabs.tsx";

const TABS = [
  { id: "sandboxes", label: "Sandboxes" },
  { id: "users", label: "Users" },
  { id: "usage", label: "Usage" },
  { id: "agents", label: "Agents" },
  { id: "access", label: "Access" },
  { id: "audit", label: "Audit log" },
] as const;
type TabId = (typeof TABS)[number]["id"];

type Phase =
  | { name: "loading" }
  | { name: "login"; error?: string }
  | { name: "ready"; who: string };

/** The team's admin UI: live sandboxes, people, usage, agents and the audit log. */
export function AdminApp() {
  const client = useMemo(() => createClient("/admin/api"), []);
  const [phase, setPhase] = useState<Phase>({ name: "loading" });
  const [tab, setTab] = useState<TabId>(() => {
    const fromHash = window.location.hash.slice(1);
    return TABS.some((t) => t.id === fromHash) ? (fromHash as TabId) : "sandboxes";
  });

  useEffect(() => {
    client
      .get<{ csrf: string; name: string }>("/session")
      .then((s) => {
        client.setCsrf(s.csrf);
        setPhase({ name: "ready", who: s.name });
      })
      .catch((err) =>
        setPhase(
          err instanceof ApiError && err.status === 401
            ? { name: "login" }
            : { name: "login", error: errorText(err) },
        ),
      );
  }, [client]);

  if (phase.name === "loading")
    return (
      <main className="page narrow" aria-busy="true">
        <p className="muted">Loading…</p>
      </main>
    );
  if (phase.name === "login")
    return (
      <Login client={client} error={phase.error} onIn={(who) => setPhase({ name: "ready", who })} />
    );

  const select = (id: TabId) => {
    setTab(id);
    history.replaceState(null, "", `#${id}`);
  };
  return (
    <>
      <header className="topbar">
        <div className="bar wide">
          <div>
            <p className="eyebrow">Lobu</p>
            <h1>Admin</h1>
          </div>
          <div className="who">
            <span>{phase.who}</span>
            <button
              type="button"
              className="secondary"
              onClick={async () => {
                await client.send("POST", "/logout").catch(bestEffort(console, LOGOUT_UNCONFIRMED));
                setPhase({ name: "login" });
              }}
            >
              Log out
            </button>
          </div>
        </div>
      </header>
      <main className="page wide">
        <TabList current={tab} onSelect={select} />
        <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
          {tab === "sandboxes" ? <SandboxesTab client={client} /> : null}
          {tab === "users" ? <UsersTab client={client} /> : null}
          {tab === "usage" ? <UsageTab client={client} /> : null}
          {tab === "agents" ? <AgentsTab client={client} /> : null}
          {tab === "access" ? <AccessTab client={client} /> : null}
          {tab === "audit" ? <AuditTab client={client} /> : null}
        </div>
      </main>
    </>
  );
}

/** Tabs with arrow-key navigation (WAI-ARIA tabs pattern). */
function TabList(props: { current: TabId; onSelect(id: TabId): void }) {
  const refs = useRef(new Map<TabId, HTMLButtonElement>());
  const onKey = (e: KeyboardEvent) => {
    const i = TABS.findIndex((t) => t.id === props.current);
    const next =
      e.key === "ArrowRight"
        ? TABS[(i + 1) % TABS.length]
        : e.key === "ArrowLeft"
          ? TABS[(i - 1 + TABS.length) % TABS.length]
          : e.key === "Home"
            ? TABS[0]
            : e.key === "End"
              ? TABS[TABS.length - 1]
              : undefined;
    if (!next) return;
    e.preventDefault();
    props.onSelect(next.id);
    refs.current.get(next.id)?.focus();
  };
  return (
    <div className="tabs" role="tablist" aria-label="Admin sections" onKeyDown={onKey}>
      {TABS.map((t) => (
        <button
          key={t.id}
          ref={(el) => {
            if (el) refs.current.set(t.id, el);
          }}
          type="button"
          role="tab"
          id={`tab-${t.id}`}
          aria-selected={props.current === t.id}
          aria-controls={`panel-${t.id}`}
          tabIndex={props.current === t.id ? 0 : -1}
          onClick={() => props.onSelect(t.id)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

function Login(props: { client: Client; error?: string; onIn(who: string): void }) {
  const [token, setToken] = useState("");
  const [status, setStatus] = useState<Status>(
    props.error ? { kind: "error", text: props.error } : undefined,
  );
  const [busy, setBusy] = useState(false);
  return (
    <main className="page narrow">
      <form
        className="card"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          try {
            const s = await props.client.send<{ csrf: string; name: string }>("POST", "/login", {
              token,
            });
            props.client.setCsrf(s.csrf);
            setToken("");
            props.onIn(s.name);
          } catch (err) {
            setStatus({ kind: "error", text: errorText(err) });
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>Lobu admin</h1>
        <p className="muted">
          Log in with an admin API token (<code>lobu run</code> writes one to{" "}
          <code>&lt;data dir&gt;/admin-token</code>). Admins listed in <code>[admin] users</code>{" "}
          can also open this page from their settings.
        </p>
        <div className="field">
          <label htmlFor="admin-token">Admin API token</label>
          <input
            id="admin-token"
            type="password"
            autoComplete="current-password"
            value={token}
            onChange={(e) => setToken(e.target.value)}
          />
        </div>
        <div className="actions">
          <button type="submit" disabled={busy || !token.trim()}>
            Log in
          </button>
        </div>
        <StatusLine status={status} />
      </form>
    </main>
  );
}
