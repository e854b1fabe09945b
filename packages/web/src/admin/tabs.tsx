import type {
  AgentRow,
  AuditRow,
  LinkedAccountRow,
  SandboxesView,
  SandboxRow,
  UsageSummary,
  UserRow,
} from "@lobu/core/views";
import { type ReactNode, useCallback, useEffect, useId, useState } from "react";
import { type Client, errorText } from "../api.ts";
import { Badge, relativeTime } from "../ui.tsx";

/** Fetch `path` now and every `everyMs` while `live`; the latest result or error. */
export function usePoll<T>(client: Client, path: string, everyMs: number, live = true) {
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

type Column = string | { label: ReactNode; num?: boolean };

/**
 * A scrollable table of rows; `empty` fills it once loaded rows turn out to
 * be none (`rows` undefined = still loading).
 */
export function DataTable<T>(props: {
  caption?: string;
  columns: Column[];
  rows: T[] | undefined;
  row(item: T): ReactNode;
  empty?: string;
}) {
  return (
    <div className="table-wrap">
      <table>
        {props.caption ? <caption className="sr-only">{props.caption}</caption> : null}
        <thead>
          <tr>
            {props.columns.map((col, i) => {
              const c = typeof col === "string" ? { label: col } : col;
              return (
                // biome-ignore lint/suspicious/noArrayIndexKey: columns are static
                <th key={i} scope="col" className={c.num ? "num" : undefined}>
                  {c.label}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {(props.rows ?? []).map(props.row)}
          {props.empty && props.rows?.length === 0 ? (
            <tr>
              <td colSpan={props.columns.length} className="muted">
                {props.empty}
              </td>
            </tr>
          ) : null}
        </tbody>
      </table>
    </div>
  );
}

const numCol = (label: string): Column => ({ label, num: true });

const STATE_TONE = { running: "ok", starting: "warn", stopped: "muted" } as const;

export function SandboxesTab({ client }: { client: Client }) {
  const [live, setLive] = useState(true);
  const { data, error, at, reload } = usePoll<SandboxesView>(client, "/sandboxes", 2000, live);
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
  const row = (s: SandboxRow) => (
    <tr key={s.id}>
      <td>
        <div className="mono small">{s.label}</div>
        <div className="muted small">
          {s.starts} start{s.starts === 1 ? "" : "s"}
          {s.pid ? ` · pid ${s.pid}` : ""}
          {s.lastExit && s.state !== "running" ? ` · last exit: ${s.lastExit.reason}` : ""}
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
        {s.usage?.pool ? (
          <div className="muted small">
            shared by {s.usage.pool.sandboxes} sandbox{s.usage.pool.sandboxes === 1 ? "" : "es"}
          </div>
        ) : null}
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
  );
  return (
    <section aria-label="Sandboxes">
      <div className="toolbar">
        <p>
          {data ? (
            <>
              <strong>{data.running}</strong> running of {data.total} ·{" "}
              <span className="muted">driver {data.driver}</span>
              {data.total > data.sandboxes.length ? (
                <span className="muted">
                  {" "}
                  · showing the {data.sandboxes.length} most recently active
                </span>
              ) : null}
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
      <DataTable
        caption="Sandboxes, refreshed every 2 seconds"
        columns={[
          "Sandbox",
          "Agent",
          "State",
          "Memory",
          "Disk",
          "Last activity",
          { label: <span className="sr-only">Actions</span> },
        ]}
        rows={data?.sandboxes}
        row={row}
        empty="No sandboxes yet: they start with a person's first message."
      />
    </section>
  );
}

export function UsersTab({ client }: { client: Client }) {
  const { data, error } = usePoll<{ users: UserRow[] }>(client, "/users", 10_000);
  const links = usePoll<{ accounts: LinkedAccountRow[] }>(client, "/links", 10_000);
  return (
    <section aria-label="Users">
      {error ? <p className="field-error">{error}</p> : null}
      <DataTable
        caption="People who have conversations"
        columns={[
          "Person",
          "Agents",
          numCol("Conversations"),
          numCol("Tokens in / out"),
          "Last message",
        ]}
        rows={data?.users}
        row={(u) => (
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
        )}
        empty="Nobody has talked to an agent yet."
      />
      {links.error ? <p className="field-error">{links.error}</p> : null}
      <DataTable
        caption="Linked accounts: identities that share settings, keys and memory"
        columns={["Account (primary identity)", "Linked identities"]}
        rows={links.data?.accounts}
        row={(a) => (
          <tr key={a.account}>
            <td className="mono">{a.account}</td>
            <td className="mono">{a.identities.slice(1).join(", ")}</td>
          </tr>
        )}
        empty="No identities are linked."
      />
    </section>
  );
}

/** An estimated cost in USD; null is "no price" (the model is not in `[prices]`), never $0. */
function Cost({ usd }: { usd: number | null }) {
  if (usd === null) return <span className="muted">no price</span>;
  return <>{usd > 0 && usd < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`}</>;
}

/** Use against a limit: "1,200 / 5,000" with a meter, or the use alone when there is no limit. */
function Budget(props: { used: number; limit: number | null; label: string }) {
  if (props.limit === null)
    return (
      <span>
        {num(props.used)} <span className="muted small">no limit</span>
      </span>
    );
  return (
    <span className="meter-wrap">
      <meter
        min={0}
        max={props.limit}
        // Past 80% the bar turns to a warning, at the limit to "bad".
        low={props.limit * 0.8}
        high={props.limit * 0.999}
        optimum={0}
        value={Math.min(props.used, props.limit)}
        aria-label={props.label}
      />
      <span>
        {num(props.used)} / {num(props.limit)}
      </span>
    </span>
  );
}

const modelName = (model: string) => model || "(not recorded)";

export function UsageTab({ client }: { client: Client }) {
  const [since, setSince] = useState(() =>
    new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10),
  );
  const sinceId = useId();
  const { data, error } = usePoll<UsageSummary>(
    client,
    `/usage?since=${encodeURIComponent(since)}`,
    15_000,
  );
  return (
    <section aria-label="Usage">
      <div className="toolbar">
        <label htmlFor={sinceId}>Since</label>
        <input id={sinceId} type="date" value={since} onChange={(e) => setSince(e.target.value)} />
      </div>
      {error ? <p className="field-error">{error}</p> : null}
      {data ? (
        <p>
          Estimated cost: <strong>{`$${data.costUsd.toFixed(2)}`}</strong>{" "}
          <span className="muted small">(USD, from the [prices] table in lobu.toml)</span>
          {data.unpriced.length > 0 ? (
            <span className="muted small">
              {" "}
              · no price for {data.unpriced.join(", ")}, not included
            </span>
          ) : null}
        </p>
      ) : null}
      <h2>Budgets</h2>
      <DataTable
        columns={[
          "Agent",
          "Person",
          "Tokens today",
          "Tokens this month",
          "Requests in the last minute",
          "Status",
        ]}
        rows={data?.budgets}
        row={(b) => {
          const who = b.userKey ?? "everyone";
          return (
            <tr key={`${b.agentId}|${who}`}>
              <td>{b.agentId}</td>
              <td className={b.userKey ? "mono small" : "muted"}>{who}</td>
              <td>
                <Budget
                  used={b.used.tokensToday}
                  limit={b.limits.tokensPerDay}
                  label={`tokens today, ${b.agentId}, ${who}`}
                />
              </td>
              <td>
                <Budget
                  used={b.used.tokensThisMonth}
                  limit={b.limits.tokensPerMonth}
                  label={`tokens this month, ${b.agentId}, ${who}`}
                />
              </td>
              <td>
                <Budget
                  used={b.used.requestsLastMinute}
                  limit={b.limits.requestsPerMinute}
                  label={`requests in the last minute, ${b.agentId}, ${who}`}
                />
              </td>
              <td>
                {b.exhausted ? (
                  <>
                    <Badge tone="danger">used up</Badge>
                    <div className="muted small">
                      resets{" "}
                      {b.remaining.tokensThisMonth === 0
                        ? b.resets.month.slice(0, 10)
                        : `${b.resets.day.slice(11, 16)} UTC`}
                    </div>
                  </>
                ) : (
                  <Badge tone="ok">within budget</Badge>
                )}
              </td>
            </tr>
          );
        }}
        empty="No budgets apply yet (set [budgets] in lobu.toml), or nobody has used a budgeted agent this month."
      />
      <h2>Per person and model</h2>
      <DataTable
        columns={[
          "Person",
          "Agent",
          "Provider / model",
          numCol("Requests"),
          numCol("Input tokens"),
          numCol("Output tokens"),
          numCol("Estimated cost"),
        ]}
        rows={data?.totals}
        row={(t) => (
          <tr key={`${t.userKey}|${t.agentId}|${t.provider}|${t.model}`}>
            <td className="mono small">{t.userKey}</td>
            <td>{t.agentId}</td>
            <td className="small">
              {t.provider} / <span className="mono">{modelName(t.model)}</span>
            </td>
            <td className="num">{num(t.requests)}</td>
            <td className="num">{num(t.inputTokens)}</td>
            <td className="num">{num(t.outputTokens)}</td>
            <td className="num">
              <Cost usd={t.costUsd} />
            </td>
          </tr>
        )}
        empty="No model usage in this period."
      />
      <h2>By day</h2>
      <DataTable
        columns={[
          "Day",
          "Agent",
          "Person",
          "Provider / model",
          numCol("Requests"),
          numCol("Tokens in / out"),
          numCol("Estimated cost"),
        ]}
        rows={data?.daily}
        row={(r) => (
          <tr key={`${r.day}|${r.agentId}|${r.userKey}|${r.provider}|${r.model}`}>
            <td>{r.day}</td>
            <td>{r.agentId}</td>
            <td className="mono small">{r.userKey}</td>
            <td className="small">
              {r.provider} / <span className="mono">{modelName(r.model)}</span>
            </td>
            <td className="num">{num(r.requests)}</td>
            <td className="num">
              {num(r.inputTokens)} / {num(r.outputTokens)}
            </td>
            <td className="num">
              <Cost usd={r.costUsd} />
            </td>
          </tr>
        )}
      />
    </section>
  );
}

export function AgentsTab({ client }: { client: Client }) {
  const { data, error } = usePoll<{ agents: AgentRow[] }>(client, "/agents", 0);
  return (
    <section aria-label="Agents">
      {error ? <p className="field-error">{error}</p> : null}
      <DataTable
        columns={["Agent", "Model", "Tools and policy", "Skills", numCol("Conversations")]}
        rows={data?.agents}
        row={(a) => (
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
            <td className="small">{a.skills.join(", ") || <span className="muted">none</span>}</td>
            <td className="num">{a.conversations}</td>
          </tr>
        )}
      />
    </section>
  );
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
      <DataTable
        columns={["When", "Action", "Actor", "Agent", "Details"]}
        rows={data?.records}
        row={(r) => (
          <tr key={r.id}>
            <td className="small" title={new Date(r.at).toISOString()}>
              {new Date(r.at).toLocaleString()}
            </td>
            <td className="mono small">{r.action}</td>
            <td className="mono small">{r.actor}</td>
            <td>{r.agentId ?? ""}</td>
            <td className="mono small details">{r.details ? JSON.stringify(r.details) : ""}</td>
          </tr>
        )}
        empty="No matching records."
      />
    </section>
  );
}
