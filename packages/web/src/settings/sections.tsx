import { bestEffort } from "@lobu/core/best-effort";
import { type ReactNode, useEffect, useId, useState } from "react";
import type { Client } from "../api.ts";
import { Badge, InlineForm, relativeTime, Section } from "../ui.tsx";
import type { Act } from "./SettingsApp.tsx";
import type { PackageStatusView, SettingsView } from "./types.ts";

interface Props {
  view: SettingsView;
  client: Client;
  act: Act;
  busy: boolean;
}

const enc = encodeURIComponent;

/** `provider/model` as one select value (model ids may hold slashes: split at the first). */
const choiceKey = (provider: string, model: string) => `${provider}/${model}`;

function tokens(n: number): string {
  return n >= 1_000_000 ? `${+(n / 1_000_000).toFixed(1)}M` : `${Math.round(n / 1000)}k`;
}

/**
 * Provider and model choice from what the operator allows and a key exists
 * for, and the person's own API keys (write-only) for the providers allowed.
 */
export function ModelSection({ view, client, act, busy }: Props) {
  const m = view.model;
  const current = m.provider && m.model ? choiceKey(m.provider, m.model) : "";
  const [choice, setChoice] = useState(current);
  const modelId = useId();
  const byProvider = new Map<string, SettingsView["model"]["choices"]>();
  for (const c of m.choices) byProvider.set(c.provider, [...(byProvider.get(c.provider) ?? []), c]);
  const picked = m.choices.find((c) => choiceKey(c.provider, c.model) === choice);
  const nameOf = (id: string) => m.providers.find((p) => p.id === id)?.name ?? id;
  const agentDefault = [m.agentProvider, m.agentModel].filter(Boolean).join("/");
  return (
    <Section
      title="Model"
      description="Which model your agent uses, from those your team allows, and your own API key if you want to use it instead of the team's."
    >
      <form
        className="grid-form"
        onSubmit={(e) => {
          e.preventDefault();
          void act("Model saved.", () =>
            client.send(
              "PUT",
              "/model",
              picked
                ? { provider: picked.provider, model: picked.model }
                : { provider: null, model: null },
            ),
          );
        }}
      >
        <div className="field">
          <label htmlFor={modelId}>Model</label>
          <select id={modelId} value={choice} onChange={(e) => setChoice(e.target.value)}>
            <option value="">Agent default{agentDefault ? ` (${agentDefault})` : ""}</option>
            {[...byProvider].map(([provider, models]) => (
              <optgroup key={provider} label={nameOf(provider)}>
                {models.map((c) => (
                  <option key={c.model} value={choiceKey(c.provider, c.model)}>
                    {c.name === c.model ? c.model : `${c.name} (${c.model})`}
                  </option>
                ))}
              </optgroup>
            ))}
          </select>
          {picked ? (
            <p className="hint" data-testid="model-facts">
              {tokens(picked.contextWindow)} context · {tokens(picked.maxOutputTokens)} output
              {picked.images ? " · images" : ""}
              {picked.reasoning ? " · reasoning" : ""}
              {picked.price
                ? ` · $${picked.price.input} in / $${picked.price.output} out per million tokens`
                : ""}
            </p>
          ) : m.choices.length === 0 ? (
            <p className="hint">
              No model can be picked yet: add an API key below, or ask an admin to allow one.
            </p>
          ) : null}
        </div>
        <div className="field end">
          <button type="submit" disabled={busy}>
            Save model
          </button>
        </div>
      </form>
      <h3>API keys</h3>
      <ul className="list">
        {m.providers
          .filter((p) => p.allowed)
          .map((p) => (
            <ProviderKey key={p.id} provider={p} client={client} act={act} busy={busy} />
          ))}
      </ul>
    </Section>
  );
}

function ProviderKey(props: {
  provider: SettingsView["model"]["providers"][number];
  client: Client;
  act: Act;
  busy: boolean;
}) {
  const { provider: p, client, act, busy } = props;
  const [value, setValue] = useState("");
  const [editing, setEditing] = useState(false);
  const save = async () => {
    const ok = await act(`Your ${p.id} key is saved.`, () =>
      client.send("PUT", `/keys/${enc(p.id)}`, { value }),
    );
    if (ok) {
      setValue("");
      setEditing(false);
    }
  };
  return (
    <li className="item column">
      <div className="item-head">
        <span className="name">{p.id}</span>
        {p.userKey ? (
          <Badge tone="ok">
            your key <span className="mono">{p.userKey.hint}</span>
          </Badge>
        ) : p.sharedKey ? (
          <Badge>team key</Badge>
        ) : (
          <Badge tone="warn">no key</Badge>
        )}
        <span className="spacer" />
        {p.userKey && !editing ? (
          <>
            <button type="button" className="secondary" onClick={() => setEditing(true)}>
              Replace
            </button>
            <button
              type="button"
              className="danger"
              disabled={busy}
              onClick={() =>
                act(`Your ${p.id} key is deleted.`, () =>
                  client.send("DELETE", `/keys/${enc(p.id)}`),
                )
              }
            >
              Delete
            </button>
          </>
        ) : null}
      </div>
      {!p.userKey || editing ? (
        <InlineForm
          label={`Your ${p.id} API key`}
          type="password"
          button={p.userKey ? "Replace key" : "Save key"}
          value={value}
          onChange={setValue}
          onSubmit={save}
          disabled={busy}
          autoComplete="off"
          hint="Stored encrypted and never shown again; your agent only ever sees a placeholder."
        />
      ) : (
        <p className="hint">Updated {relativeTime(p.userKey.updatedAt)}.</p>
      )}
    </li>
  );
}

/** What the person added (each removable), then what they get from elsewhere (badged, fixed). */
function EntryList(props: {
  mine: string[];
  fixed: string[];
  fixedBadge: string;
  /** What an entry is, for screen readers ("domain", "package"). */
  what: string;
  empty: string;
  remove(entry: string): void;
  busy: boolean;
  /** Shown under an entry's name (e.g. a package's state). */
  detail?: (entry: string) => ReactNode;
}) {
  return (
    <ul className="list">
      {props.mine.map((x) => (
        <li key={x} className="item">
          <span className="name mono grow">
            {x}
            {props.detail?.(x)}
          </span>
          <button
            type="button"
            className="secondary"
            disabled={props.busy}
            aria-label={`Remove ${props.what} ${x}`}
            onClick={() => props.remove(x)}
          >
            Remove
          </button>
        </li>
      ))}
      {props.fixed.map((x) => (
        <li key={`fixed-${x}`} className="item">
          <span className="name mono grow">
            {x}
            {props.detail?.(x)}
          </span>
          <Badge>{props.fixedBadge}</Badge>
        </li>
      ))}
      {props.mine.length + props.fixed.length === 0 ? (
        <li className="item muted">{props.empty}</li>
      ) : null}
    </ul>
  );
}

const DOMAIN =
  /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** Client-side check with the server's rules (the server checks again). */
export function domainProblem(input: string): string | undefined {
  const d = input.trim().toLowerCase();
  if (!d) return undefined;
  if (d === "*" || /^\*\.[^.]+$/.test(d)) return "Too broad: allow specific domains.";
  if (/^https?:\/\//.test(d) || d.includes("/")) return "Enter just the host, e.g. api.github.com.";
  if (!DOMAIN.test(d)) return "Not a domain: use a host like api.github.com or *.github.com.";
  return undefined;
}

export function NetworkSection({ view, client, act, busy }: Props) {
  const [domain, setDomain] = useState("");
  const [touched, setTouched] = useState(false);
  const d = view.domains;
  const problem = touched ? domainProblem(domain) : undefined;
  const team = [...new Set([...d.installation, ...d.agent])];
  return (
    <Section
      title="Network"
      description="Domains your agent may reach from its sandbox. Everything else is blocked."
    >
      <EntryList
        mine={d.user}
        fixed={team}
        fixedBadge="team"
        what="domain"
        empty="No domains allowed yet."
        remove={(x) => act(`Removed ${x}.`, () => client.send("DELETE", `/domains/${enc(x)}`))}
        busy={busy}
      />
      <InlineForm
        label="Allow a domain"
        placeholder="api.github.com"
        button="Allow"
        value={domain}
        onChange={(v) => {
          setDomain(v);
          setTouched(true);
        }}
        onSubmit={async () => {
          if (domainProblem(domain)) return;
          const ok = await act(`Allowed ${domain.trim().toLowerCase()}.`, () =>
            client.send("POST", "/domains", { name: domain }),
          );
          if (ok) {
            setDomain("");
            setTouched(false);
          }
        }}
        disabled={busy || Boolean(domainProblem(domain))}
        error={problem}
        hint="A host (api.github.com) or all its subdomains (*.github.com)."
      />
      {d.denied.length ? (
        <p className="hint">Always blocked by your team: {d.denied.join(", ")}</p>
      ) : null}
    </Section>
  );
}

export function ToolsSection({ view, client, act, busy }: Props) {
  if (view.tools.length === 0) return null;
  return (
    <Section
      title="Tool approvals"
      description="Tools your agent asks about before using. You can let it use them without asking."
    >
      <ul className="list">
        {view.tools.map((t) => (
          <ToolRow key={t.name} tool={t} client={client} act={act} busy={busy} />
        ))}
      </ul>
    </Section>
  );
}

function ToolRow(props: {
  tool: SettingsView["tools"][number];
  client: Client;
  act: Act;
  busy: boolean;
}) {
  const { tool: t, client, act, busy } = props;
  const id = useId();
  if (t.agentPolicy === "deny")
    return (
      <li className="item">
        <span className="name mono grow">{t.name}</span>
        <Badge tone="danger">blocked by your team</Badge>
      </li>
    );
  return (
    <li className="item">
      <label className="name mono grow" htmlFor={id}>
        {t.name}
      </label>
      <select
        id={id}
        value={t.effective === "allow" ? "allow" : "ask"}
        disabled={busy}
        onChange={(e) =>
          act(`${t.name}: ${e.target.value === "allow" ? "always allowed" : "asks first"}.`, () =>
            client.send("PUT", `/tools/${enc(t.name)}`, { policy: e.target.value }),
          )
        }
      >
        <option value="ask">Ask me every time</option>
        <option value="allow">Always allow</option>
      </select>
    </li>
  );
}

/** A person's connection to a server, in words. */
const MCP_STATUS: Record<SettingsView["mcp"]["servers"][number]["status"], string> = {
  connected: "Connected with your account",
  needs_authorization: "Not connected: sign in to use it",
  error: "The server cannot be reached right now",
  shared: "Uses the team's account: nothing to connect",
  stdio: "Runs inside your sandbox: nothing to connect",
  stdio_unavailable:
    "Runs inside the sandbox, but this gateway's sandboxes cannot run programs (the virtual tier)",
};

/**
 * MCP servers: add one to the agent, and connect your own account (the
 * gateway keeps the tokens; the agent never sees them). Connect opens the
 * server's sign-in page; disconnect revokes the tokens there.
 */
export function McpSection({ view, client, act, busy }: Props) {
  if (view.mcp.servers.length === 0) return null;
  const connect = async (id: string) => {
    const { url } = await client.send<{ url: string }>("POST", `/mcp/${enc(id)}/connect`);
    window.location.assign(url);
  };
  return (
    <Section
      title="MCP servers"
      description="Tool servers your team offers. Add one to your agent and connect your own account; your agent uses it as you, and never sees your tokens."
    >
      <ul className="list">
        {view.mcp.servers.map((m) => {
          const added = view.mcp.connected.includes(m.id);
          const fromSkill = view.mcp.fromSkills.includes(m.id);
          const personal =
            m.status !== "shared" && m.status !== "stdio" && m.status !== "stdio_unavailable";
          return (
            <li key={m.id} className="item">
              <div className="grow">
                <span className="name">{m.id}</span> {added ? <Badge>added</Badge> : null}
                {fromSkill ? <Badge>from a skill</Badge> : null}
                {m.description ? <p className="hint">{m.description}</p> : null}
                <p className="hint" role="status">
                  {MCP_STATUS[m.status]}
                </p>
              </div>
              {personal && m.status !== "connected" ? (
                <button type="button" disabled={busy} onClick={() => void connect(m.id)}>
                  Connect
                </button>
              ) : null}
              {personal && m.status !== "needs_authorization" ? (
                <>
                  <button
                    type="button"
                    className="secondary"
                    disabled={busy}
                    onClick={() => void connect(m.id)}
                  >
                    Reconnect
                  </button>
                  <button
                    type="button"
                    className="secondary"
                    disabled={busy}
                    aria-label={`Disconnect ${m.id}`}
                    onClick={() =>
                      act(`Disconnected ${m.id}.`, () =>
                        client.send("POST", `/mcp/${enc(m.id)}/disconnect`),
                      )
                    }
                  >
                    Disconnect
                  </button>
                </>
              ) : null}
              <button
                type="button"
                className="secondary"
                disabled={busy}
                aria-pressed={added}
                aria-label={`${added ? "Remove" : "Add"} ${m.id}`}
                onClick={() =>
                  act(`${added ? "Removed" : "Added"} ${m.id}.`, () =>
                    client.send(added ? "DELETE" : "POST", `/mcp/${enc(m.id)}`),
                  )
                }
              >
                {added ? "Remove" : "Add"}
              </button>
            </li>
          );
        })}
      </ul>
    </Section>
  );
}

/** How long the page waits before asking again while packages are being installed. */
const PACKAGE_POLL_MS = 2000;

/** A package's state, said in words (and with its reason and log when it failed). */
function PackageState({ status }: { status: PackageStatusView | undefined }) {
  if (!status) return null;
  switch (status.state) {
    case "queued":
      return (
        <span className="package-state">
          {" "}
          <Badge>queued</Badge>
        </span>
      );
    case "building":
      return (
        <span className="package-state">
          {" "}
          <Badge tone="warn">installing</Badge> <span className="muted small">{status.detail}</span>
        </span>
      );
    case "ready":
      return (
        <span className="package-state">
          {" "}
          <Badge tone="ok">{status.version ? `ready · ${status.version}` : "ready"}</Badge>
        </span>
      );
    case "failed":
      return (
        <span className="package-state">
          {" "}
          <Badge tone="danger">failed</Badge>
          <span className="field-error small block">{status.reason}</span>
          {status.log.length ? (
            <details className="small">
              <summary>Build log (last lines)</summary>
              <pre className="log">{status.log.join("\n")}</pre>
            </details>
          ) : null}
        </span>
      );
  }
}

export function PackagesSection({
  view,
  client,
  act,
  busy,
  refresh,
}: Props & { refresh?: () => Promise<void> }) {
  const [name, setName] = useState("");
  const p = view.packages;
  const pending = Object.values(p.status).some(
    (s) => s.state === "queued" || s.state === "building",
  );
  // While something installs, the page follows it until every package is ready or failed.
  useEffect(() => {
    if (!pending || !refresh) return;
    const timer = setInterval(
      () =>
        void refresh().catch(
          bestEffort(console, "package status not refreshed", {}, { level: "debug" }),
        ),
      PACKAGE_POLL_MS,
    );
    return () => clearInterval(timer);
  }, [pending, refresh]);
  return (
    <Section
      title="Packages"
      description="Nix packages your agent gets on its PATH, from the next command it runs."
    >
      {p.unavailable ? (
        <p className="notice" role="note">
          Not available here: {p.unavailable}. Your agent cannot use packages on this gateway.
        </p>
      ) : null}
      <EntryList
        detail={(x) => <PackageState status={p.status[x]} />}
        mine={p.installed}
        fixed={p.fromSkills}
        fixedBadge="from a skill"
        what="package"
        empty="No extra packages."
        remove={(x) => act(`Removed ${x}.`, () => client.send("DELETE", `/packages/${enc(x)}`))}
        busy={busy}
      />
      <InlineForm
        label="Add a package"
        placeholder="ripgrep"
        button="Add"
        value={name}
        onChange={setName}
        onSubmit={async () => {
          if (
            await act(`Added ${name.trim()}: it is being installed.`, () =>
              client.send("POST", "/packages", { name }),
            )
          )
            setName("");
        }}
        disabled={busy || Boolean(p.unavailable)}
      />
    </Section>
  );
}

export function SecretsSection({ view, client, act, busy }: Props) {
  if (view.secrets.length === 0) return null;
  return (
    <Section
      title="Secrets"
      description="Credentials you gave your agent. Values are never shown again."
    >
      <ul className="list">
        {view.secrets.map((s) => (
          <li key={s.name} className="item">
            <span className="name mono grow">{s.name}</span>
            <span className="mono muted">{s.hint}</span>
            <button
              type="button"
              className="danger"
              disabled={busy}
              aria-label={`Delete secret ${s.name}`}
              onClick={() =>
                act(`Deleted ${s.name}.`, () => client.send("DELETE", `/secrets/${enc(s.name)}`))
              }
            >
              Delete
            </button>
          </li>
        ))}
      </ul>
    </Section>
  );
}
