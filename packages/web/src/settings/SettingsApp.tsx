import { bestEffort } from "@lobu/core/best-effort";
import { useCallback, useEffect, useMemo, useState } from "react";
import { ApiError, createClient, errorText, LOGOUT_UNCONFIRMED } from "../api.ts";
import {
  type TelegramSession,
  telegramInitData,
  telegramReady,
  telegramSession,
} from "../telegram.ts";
import { type Status, StatusLine } from "../ui.tsx";
import { LinksSection } from "./LinksSection.tsx";
import { MemorySection, SchedulesSection } from "./PersonalSections.tsx";
import { PrivacySection } from "./PrivacySection.tsx";
import { RequestCard } from "./RequestCard.tsx";
import { SkillsSection } from "./SkillsSection.tsx";
import {
  McpSection,
  ModelSection,
  NetworkSection,
  PackagesSection,
  SecretsSection,
  ToolsSection,
} from "./sections.tsx";
import type { SettingsView } from "./types.ts";

export type Act = (done: string, change: () => Promise<SettingsView>) => Promise<boolean>;

type Phase =
  | { name: "loading" }
  | { name: "ready" }
  | { name: "signed-out"; message: string }
  | { name: "failed"; message: string };

/** The person's settings for their agent, opened from a chat link or the Telegram Mini App. */
export function SettingsApp() {
  const client = useMemo(() => createClient("/settings/api"), []);
  const [phase, setPhase] = useState<Phase>({ name: "loading" });
  const [view, setView] = useState<SettingsView>();
  const [status, setStatus] = useState<Status>();
  const [busy, setBusy] = useState(false);
  const params = useMemo(() => new URLSearchParams(window.location.search), []);
  const requestId = params.get("request") ?? undefined;

  useEffect(() => {
    let cancelled = false;
    (async () => {
      const initData = telegramInitData();
      const bot = params.get("bot");
      try {
        if (initData) {
          telegramReady();
          // One session per launch: a reload keeps the one this initData opened.
          const s = await telegramSession(initData, () =>
            client.send<TelegramSession>("POST", "/session/telegram", {
              initData,
              // A named bot's Mini App: its initData is checked against that bot's token.
              ...(bot ? { bot } : {}),
            }),
          );
          client.setSession(s.token);
          client.setCsrf(s.csrf);
        } else {
          const s = await client.get<{ csrf: string }>("/session");
          client.setCsrf(s.csrf);
        }
        const state = await client.get<SettingsView>("/state");
        if (cancelled) return;
        setView(state);
        setPhase({ name: "ready" });
      } catch (err) {
        if (cancelled) return;
        if (err instanceof ApiError && err.status === 401)
          setPhase({ name: "signed-out", message: initData ? err.text : "" });
        else setPhase({ name: "failed", message: errorText(err) });
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [client, params]);

  const act: Act = useCallback(async (done, change) => {
    setBusy(true);
    setStatus(undefined);
    try {
      setView(await change());
      setStatus({ kind: "ok", text: done });
      return true;
    } catch (err) {
      setStatus({ kind: "error", text: errorText(err) });
      if (err instanceof ApiError && err.status === 401)
        setPhase({ name: "signed-out", message: err.text });
      return false;
    } finally {
      setBusy(false);
    }
  }, []);

  const refresh = useCallback(async () => {
    setView(await client.get<SettingsView>("/state"));
  }, [client]);

  if (phase.name === "loading")
    return (
      <main className="page narrow" aria-busy="true">
        <p className="muted">Loading your settings…</p>
      </main>
    );
  if (phase.name === "signed-out")
    return (
      <main className="page narrow">
        <div className="card">
          <h1>Open your settings from the chat</h1>
          <p>
            This page opens with a one-time link. Send <code>settings</code> to the bot (or{" "}
            <code>/settings</code> in Telegram) and follow the button it sends you.
          </p>
          {phase.message ? <p className="field-error">{phase.message}</p> : null}
        </div>
      </main>
    );
  if (phase.name === "failed" || !view)
    return (
      <main className="page narrow">
        <div className="card">
          <h1>Settings could not be loaded</h1>
          <p className="field-error">{phase.name === "failed" ? phase.message : ""}</p>
        </div>
      </main>
    );

  const logout = async () => {
    await client.send("POST", "/logout").catch(bestEffort(console, LOGOUT_UNCONFIRMED));
    setPhase({ name: "signed-out", message: "You are logged out." });
  };
  const openAdmin = async () => {
    try {
      await client.send("POST", "/admin-login");
      window.location.assign("/admin");
    } catch (err) {
      setStatus({ kind: "error", text: errorText(err) });
    }
  };

  return (
    <>
      <a className="skip" href="#settings-main">
        Skip to settings
      </a>
      <header className="topbar">
        <div className="bar">
          <div>
            <p className="eyebrow">Your agent</p>
            <h1>{view.agent.name}</h1>
          </div>
          <div className="who">
            <span>
              {view.user.name ?? view.user.userKey.split(":").at(-1)}{" "}
              <span className="muted">({view.user.platform})</span>
            </span>
            {view.isAdmin ? (
              <button type="button" className="secondary" onClick={openAdmin}>
                Admin
              </button>
            ) : null}
            <button type="button" className="secondary" onClick={logout}>
              Log out
            </button>
          </div>
        </div>
      </header>
      <main className="page" id="settings-main" aria-busy={busy}>
        {view.agent.description ? <p className="muted lead">{view.agent.description}</p> : null}
        <StatusLine status={status} />
        {requestId ? (
          <RequestCard
            client={client}
            requestId={requestId}
            onAnswered={refresh}
            skills={view.skills.catalog}
          />
        ) : null}
        <ModelSection view={view} client={client} act={act} busy={busy} />
        <SkillsSection view={view} client={client} act={act} busy={busy} />
        <NetworkSection view={view} client={client} act={act} busy={busy} />
        <ToolsSection view={view} client={client} act={act} busy={busy} />
        <McpSection view={view} client={client} act={act} busy={busy} />
        <PackagesSection view={view} client={client} act={act} busy={busy} refresh={refresh} />
        <SecretsSection view={view} client={client} act={act} busy={busy} />
        <SchedulesSection client={client} act={act} busy={busy} />
        <MemorySection client={client} act={act} busy={busy} />
        <LinksSection client={client} act={act} busy={busy} />
        <PrivacySection
          client={client}
          busy={busy}
          setStatus={setStatus}
          onErased={() =>
            setPhase({
              name: "signed-out",
              message: "Everything this gateway kept about you was erased, and you are signed out.",
            })
          }
        />
        <p className="muted small">
          Changes apply to your own agent from its next step. What the team set up (shown as "team")
          can only be changed by an admin.
        </p>
      </main>
    </>
  );
}
