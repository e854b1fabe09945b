import type { UserRow } from "@lobu/core/views";
import { useCallback, useEffect, useId, useState } from "react";
import { type Client, errorText } from "../api.ts";
import { Badge, relativeTime } from "../ui.tsx";

interface Sandbox {
  id: string;
  label: string;
  driver: string;
  state: "starting" | "running" | "stopped" | "failed";
  busy: boolean;
  usage?: { memoryBytes?: number; diskBytes?: number; pids?: number };
  pid?: number;
  lastActiveAt: number;
  starts: number;
  lastExit?: { reason: string; at: number };
  key: { agentId: string; platform: string; userId: string };
}

interface SandboxList {
  driver: string;
  running: number;
  limits: { memoryMb: number; diskMb: number; cpus: number };
  sandboxes: Sandbox[];
}

/** Fetch `path` now and every `everyMs` while `live`; the latest result or error. */
function usePoll<T>(client: Client, path: string, everyMs: number, live = true) {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [at, setAt] = useState(0);
  const load = useCallback(async () => {
    try {
      setData(await client.get<T>(path));
      setError(undefined);
      setAt(Date.now());
    } catch (err) {
      setError(errorText(err));
    }
  }, [client, path]);
  useEffect(() => {
    void load();
    if (!live || everyMs <= 0) return;
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") void load();
    }, everyMs);
    return () => clearInterval(timer);
  }, [load, everyMs, live]);
  return { data, error, at, reload: load };
}

function mb(bytes: number | undefined): string {
  return bytes === undefined
    ? "–"
    : `${(bytes / 1_048_576).toFixed(bytes < 10_485_760 ? 1 : 0)} MB`;
}

function num(n: number): string {
  return n.toLocaleString();
}

function Meter(props: { value?: number; max: number; label: string }) {
  if (props.value === undefined) return <span className="muted">–</span>;
  const pct = Math.min(100, Math.round((props.value / props.max) * 100));
  return (
    <span className="meter-wrap">
      <meter min={0} max={props.max} value={props.value} aria-label={props.label} />
      <span>
        {mb(props.value)} <span className="muted">({pct}%)</span>
      </span>
    </span>
  );
}

const STATE_TONE = { running: "ok", starting: "warn", stopped: "muted", failed: "danger" } as const;

export function SandboxesTab({ client }: { client: Client }) {
  const [live, setLive] = useState(true);
  const { data, error, at, reload } = usePoll<SandboxList>(client, "/sandboxes", 2000, live);
  const [note, setNote] = useState<string>();
  const stop = async (id: string) => {
    try {
      await client.send("POST", `/sandboxes/${encodeURIComponent(id)}/stop`);
      setNote(`Stopping ${id}.`);
      await reload();
    } catch (err) {
      setNote(errorText(err));
    }
  };
  return (
    <section aria-label="Sandboxes">
      <div className="toolbar">
        <p>
          {data ? (
            <>
              <strong>{data.running}</strong> running of {data.sandboxes.length} ·{" "}
              <span className="muted">driver {data.driver}</span>
            </>
          ) : null}
        </p>
        <span className="spacer" />
        <span className="muted small" aria-live="off">
          {live ? <span className="live-dot" aria-hidden="true" /> : null}
          {live ? "Live" : "Paused"} · updated {relativeTime(at)}
        </span>
        <button
          type="button"
          className="secondary"
          aria-pressed={!live}
          onClick={() => setLive(!live)}
        >
          {live ? "Pause" : "Resume"}
        </button>
      </div>
      {error ? <p className="field-error">{error}</p> : null}
      {note ? (
        <p className="muted" role="status">
          {note}
        </p>
      ) : null}
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Sandboxes, refreshed every 2 seconds</caption>
          <thead>
            <tr>
              <th scope="col">Sandbox</th>
              <th scope="col">Agent</th>
              <th scope="col">State</th>
              <th scope="col">Memory</th>
              <th scope="col">Disk</th>
              <th scope="col">Last activity</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {(data?.sandboxes ?? []).map((s) => (
              <tr key={s.id}>
                <td>
                  <div className="mono small">{s.label}</div>
                  <div className="muted small">
                    {s.starts} start{s.starts === 1 ? "" : "s"}
                    {s.pid ? ` · pid ${s.pid}` : ""}
                    {s.lastExit && s.state !== "running"
                      ? ` · last exit: ${s.lastExit.reason}`
                      : ""}
                  </div>
                </td>
                <td>{s.key.agentId}</td>
                <td>
                  <Badge tone={STATE_TONE[s.state]}>{s.state}</Badge>{" "}
                  {s.busy ? <Badge tone="warn">busy</Badge> : null}
                </td>
                <td>
                  <Meter
                    value={s.usage?.memoryBytes}
                    max={(data?.limits.memoryMb ?? 1) * 1_048_576}
                    label={`Memory of ${s.label}`}
                  />
                </td>
                <td>
                  <Meter
                    value={s.usage?.diskBytes}
                    max={(data?.limits.diskMb ?? 1) * 1_048_576}
                    label={`Disk of ${s.label}`}
                  />
                </td>
                <td>{relativeTime(s.lastActiveAt)}</td>
                <td>
                  {s.state === "running" ? (
                    <button
                      type="button"
                      className="secondary small"
                      onClick={() => stop(s.id)}
                      aria-label={`Stop ${s.label}`}
                    >
                      Stop
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
            {data && data.sandboxes.length === 0 ? (
              <tr>
                <td colSpan={7} className="muted">
                  No sandboxes yet: they start with a person's first message.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
    </section>
  );
}

export function UsersTab({ client }: { client: Client }) {
  const { data, error } = usePoll<{ users: UserRow[] }>(client, "/users", 10_000);
  return (
    <section aria-label="Users">
      {error ? <p className="field-error">{error}</p> : null}
      <div className="table-wrap">
        <table>
          <caption className="sr-only">People who have conversations</caption>
          <thead>
            <tr>
              <th scope="col">Person</th>
              <th scope="col">Agents</th>
              <th scope="col" className="num">
                Conversations
              </th>
              <th scope="col" className="num">
                Tokens in / out
              </th>
              <th scope="col">Last message</th>
            </tr>
          </thead>
          <tbody>
            {(data?.users ?? []).map((u) => (
              <tr key={u.userKey}>
                <td>
                  {u.name ?? u.userKey.split(":").at(-1)}
                  <div className="mono muted small">{u.userKey}</div>
                </td>
                <td>{u.agents.join(", ")}</td>
                <td className="num">{u.conversations}</td>
                <td className="num">
                  {num(u.inputTokens)} / {num(u.outputTokens)}
                </td>
                <td>{relativeTime(u.lastMessageAt)}</td>
              </tr>
            ))}
            {data && data.users.length === 0 ? (
              <tr>
                <td colSpan={5} className="muted">
                  Nobody has talked to an agent yet.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
    </section>
  );
}

interface UsageData {
  since: string | null;
  totals: {
    userKey: string;
    provider: string;
    inputTokens: number;
    outputTokens: number;
    requests: number;
  }[];
  daily: {
    day: string;
    agentId: string;
    userKey: string;
    provider: string;
    inputTokens: number;
    outputTokens: number;
    requests: number;
  }[];
}

export function UsageTab({ client }: { client: Client }) {
  const [since, setSince] = useState(() =>
    new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10),
  );
  const sinceId = useId();
  const { data, error } = usePoll<UsageData>(client, `/usage?since=${since}`, 15_000);
  return (
    <section aria-label="Usage">
      <div className="toolbar">
        <label htmlFor={sinceId}>Since</label>
        <input id={sinceId} type="date" value={since} onChange={(e) => setSince(e.target.value)} />
      </div>
      {error ? <p className="field-error">{error}</p> : null}
      <h2>Per person and provider</h2>
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Person</th>
              <th scope="col">Provider</th>
              <th scope="col" className="num">
                Requests
              </th>
              <th scope="col" className="num">
                Input tokens
              </th>
              <th scope="col" className="num">
                Output tokens
              </th>
            </tr>
          </thead>
          <tbody>
            {(data?.totals ?? []).map((t) => (
              <tr key={`${t.userKey}|${t.provider}`}>
                <td className="mono small">{t.userKey}</td>
                <td>{t.provider}</td>
                <td className="num">{num(t.requests)}</td>
                <td className="num">{num(t.inputTokens)}</td>
                <td className="num">{num(t.outputTokens)}</td>
              </tr>
            ))}
            {data && data.totals.length === 0 ? (
              <tr>
                <td colSpan={5} className="muted">
                  No model usage in this period.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      <h2>By day</h2>
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Day</th>
              <th scope="col">Agent</th>
              <th scope="col">Person</th>
              <th scope="col">Provider</th>
              <th scope="col" className="num">
                Requests
              </th>
              <th scope="col" className="num">
                Tokens in / out
              </th>
            </tr>
          </thead>
          <tbody>
            {(data?.daily ?? []).map((r) => (
              <tr key={`${r.day}|${r.agentId}|${r.userKey}|${r.provider}`}>
                <td>{r.day}</td>
                <td>{r.agentId}</td>
                <td className="mono small">{r.userKey}</td>
                <td>{r.provider}</td>
                <td className="num">{num(r.requests)}</td>
                <td className="num">
                  {num(r.inputTokens)} / {num(r.outputTokens)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

interface AgentRow {
  id: string;
  name: string;
  description: string;
  source: string;
  provider: string | null;
  model: string | null;
  tools: string[];
  skills: string[];
  policy: { default: string; tools: Record<string, string> };
  network: { allow: string[]; deny: string[] };
  conversations: number;
}

export function AgentsTab({ client }: { client: Client }) {
  const { data, error } = usePoll<{ agents: AgentRow[] }>(client, "/agents", 0);
  return (
    <section aria-label="Agents">
      {error ? <p className="field-error">{error}</p> : null}
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Agent</th>
              <th scope="col">Model</th>
              <th scope="col">Tools and policy</th>
              <th scope="col">Skills</th>
              <th scope="col" className="num">
                Conversations
              </th>
            </tr>
          </thead>
          <tbody>
            {(data?.agents ?? []).map((a) => (
              <tr key={a.id}>
                <td>
                  <strong>{a.name}</strong> <Badge>{a.source}</Badge>
                  <div className="mono muted small">{a.id}</div>
                  {a.description ? <div className="muted small">{a.description}</div> : null}
                </td>
                <td>
                  {a.provider ?? "auto"}
                  {a.model ? <div className="mono small">{a.model}</div> : null}
                </td>
                <td className="small">
                  {a.tools
                    .map((t) => `${t}${a.policy.tools[t] ? ` (${a.policy.tools[t]})` : ""}`)
                    .join(", ")}
                  <div className="muted">default: {a.policy.default}</div>
                </td>
                <td className="small">
                  {a.skills.join(", ") || <span className="muted">none</span>}
                </td>
                <td className="num">{a.conversations}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

interface AuditRow {
  id: string;
  at: number;
  action: string;
  actor: string;
  agentId?: string;
  sandboxId?: string;
  details?: Record<string, unknown>;
}

export function AuditTab({ client }: { client: Client }) {
  const [action, setAction] = useState("");
  const [actor, setActor] = useState("");
  const [agent, setAgent] = useState("");
  const [query, setQuery] = useState("");
  const ids = { action: useId(), actor: useId(), agent: useId() };
  const { data, error } = usePoll<{ records: AuditRow[] }>(
    client,
    `/audit?limit=200${query}`,
    10_000,
  );
  return (
    <section aria-label="Audit log">
      <form
        className="toolbar filters"
        onSubmit={(e) => {
          e.preventDefault();
          const q = new URLSearchParams();
          if (action.trim()) q.set("action", action.trim());
          if (actor.trim()) q.set("actor", actor.trim());
          if (agent.trim()) q.set("agent", agent.trim());
          const text = q.toString();
          setQuery(text ? `&${text}` : "");
        }}
      >
        <div className="field">
          <label htmlFor={ids.action}>Action starts with</label>
          <input
            id={ids.action}
            value={action}
            placeholder="egress.denied"
            onChange={(e) => setAction(e.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor={ids.actor}>Actor contains</label>
          <input
            id={ids.actor}
            value={actor}
            placeholder="slack:"
            onChange={(e) => setActor(e.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor={ids.agent}>Agent</label>
          <input
            id={ids.agent}
            value={agent}
            placeholder="default"
            onChange={(e) => setAgent(e.target.value)}
          />
        </div>
        <div className="field end">
          <button type="submit">Filter</button>
        </div>
      </form>
      {error ? <p className="field-error">{error}</p> : null}
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Action</th>
              <th scope="col">Actor</th>
              <th scope="col">Agent</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {(data?.records ?? []).map((r) => (
              <tr key={r.id}>
                <td className="small" title={new Date(r.at).toISOString()}>
                  {new Date(r.at).toLocaleString()}
                </td>
                <td className="mono small">{r.action}</td>
                <td className="mono small">{r.actor}</td>
                <td>{r.agentId ?? ""}</td>
                <td className="mono small details">{r.details ? JSON.stringify(r.details) : ""}</td>
              </tr>
            ))}
            {data && data.records.length === 0 ? (
              <tr>
                <td colSpan={5} className="muted">
                  No matching records.
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
    </section>
  );
}
