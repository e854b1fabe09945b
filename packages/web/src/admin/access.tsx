import type { AccessListView, AccessView, AgentRow, ChannelRow } from "@lobu/core/views";
import { useId, useState } from "react";
import { type Client, errorText } from "../api.ts";
import { Badge, type Status, StatusLine } from "../ui.tsx";
import { DataTable, usePoll } from "./tabs.tsx";

/**
 * Who may use each agent and what each bound channel changes. Rules of agents
 * made through the API are edited here; lobu.toml agents and `[channels.*]`
 * are shown read-only (their file is their source; docs/admin.md).
 */
export function AccessTab({ client }: { client: Client }) {
  const agents = usePoll<{ agents: AgentRow[] }>(client, "/agents", 0);
  const channels = usePoll<{ channels: ChannelRow[] }>(client, "/channels", 0);
  const [editing, setEditing] = useState<string>();
  return (
    <section aria-label="Access">
      <h2>Who may use each agent</h2>
      {agents.error ? <p className="field-error">{agents.error}</p> : null}
      <DataTable
        columns={["Agent", "Allowed", "Denied", "Where"]}
        rows={agents.data?.agents}
        row={(a) => (
          <tr key={a.id}>
            <td>
              <strong>{a.name}</strong> <Badge>{a.source}</Badge>
              <div className="mono muted small">{a.id}</div>
              {a.source === "api" ? (
                <button type="button" className="secondary" onClick={() => setEditing(a.id)}>
                  Edit access
                </button>
              ) : (
                <div className="muted small">edit in lobu.toml</div>
              )}
            </td>
            <td className="small">
              <ListSummary list={a.access.allow} empty="everyone" />
            </td>
            <td className="small">
              <ListSummary list={a.access.deny} empty="nobody" />
            </td>
            <td className="small">
              <div>direct messages: {a.access.directMessages ? "on" : "off"}</div>
              <div>guests: {a.access.guests ? "allowed" : "refused"}</div>
              <div>
                shared channels:{" "}
                {a.access.externalChannels.length
                  ? a.access.externalChannels.join(", ")
                  : "refused (none allowed)"}
              </div>
            </td>
          </tr>
        )}
      />
      {editing ? (
        <AccessEditor
          client={client}
          agent={agents.data?.agents.find((a) => a.id === editing)}
          onDone={() => {
            setEditing(undefined);
            void agents.reload();
          }}
        />
      ) : null}
      <h2>Channels</h2>
      {channels.error ? <p className="field-error">{channels.error}</p> : null}
      <DataTable
        columns={["Channel", "Agent", "Persona and model", "Tools", "Ambient"]}
        rows={channels.data?.channels}
        empty="No [channels.*] in lobu.toml."
        row={(c) => (
          <tr key={c.channel}>
            <td className="mono small">{c.channel}</td>
            <td>{c.agent ?? <span className="muted">platform default</span>}</td>
            <td className="small">
              {c.persona?.name ?? <span className="muted">agent's name</span>}
              {c.model ? <div className="mono">{c.model}</div> : null}
              {c.systemPrompt ? <div className="muted">own system prompt</div> : null}
            </td>
            <td className="small">
              {c.tools ? c.tools.join(", ") || "none" : <span className="muted">agent's</span>}
            </td>
            <td className="small">
              {c.ambient.mode === "off" ? (
                <span className="muted">mentions only</span>
              ) : (
                <>
                  {c.ambient.mode}
                  {c.ambient.mode === "keywords" ? `: ${c.ambient.keywords.join(", ")}` : ""}
                  <div className="muted">at most {c.ambient.perMinute} a minute</div>
                </>
              )}
            </td>
          </tr>
        )}
      />
    </section>
  );
}

const LIST_LABELS: Record<keyof AccessListView, string> = {
  users: "people",
  groups: "groups",
  emailDomains: "email domains",
  channels: "channels",
};

function ListSummary({ list, empty }: { list: AccessListView; empty: string }) {
  const parts = (Object.keys(LIST_LABELS) as (keyof AccessListView)[]).filter(
    (k) => list[k].length > 0,
  );
  if (parts.length === 0) return <span className="muted">{empty}</span>;
  return (
    <>
      {parts.map((k) => (
        <div key={k}>
          {LIST_LABELS[k]}: <span className="mono">{list[k].join(", ")}</span>
        </div>
      ))}
    </>
  );
}

const lines = (text: string) =>
  text
    .split(/[\n,]/)
    .map((l) => l.trim())
    .filter(Boolean);

function AccessEditor(props: { client: Client; agent: AgentRow | undefined; onDone(): void }) {
  const { agent } = props;
  const [draft, setDraft] = useState<AccessView | undefined>(agent?.access);
  const [status, setStatus] = useState<Status>();
  const id = useId();
  if (!agent || !draft) return null;
  const listField = (side: "allow" | "deny", key: keyof AccessListView) => (
    <div className="field" key={`${side}-${key}`}>
      <label htmlFor={`${id}-${side}-${key}`}>
        {side === "allow" ? "Allow" : "Deny"} {LIST_LABELS[key]}
      </label>
      <textarea
        id={`${id}-${side}-${key}`}
        rows={2}
        defaultValue={draft[side][key].join("\n")}
        onChange={(e) =>
          setDraft({ ...draft, [side]: { ...draft[side], [key]: lines(e.target.value) } })
        }
      />
    </div>
  );
  return (
    <form
      className="card"
      aria-label={`Access of ${agent.name}`}
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          await props.client.send("PUT", `/agents/${encodeURIComponent(agent.id)}/access`, draft);
          setStatus({ kind: "ok", text: "Saved." });
          props.onDone();
        } catch (err) {
          setStatus({ kind: "error", text: errorText(err) });
        }
      }}
    >
      <h3>Access of {agent.name}</h3>
      <p className="muted small">
        One entry a line: people as <span className="mono">slack:T012:U034</span>, groups as{" "}
        <span className="mono">slack:T012:S056</span> or{" "}
        <span className="mono">telegram::admins</span>, channels as{" "}
        <span className="mono">slack:T012:C078</span>. Deny wins over allow.
      </p>
      {(["allow", "deny"] as const).flatMap((side) =>
        (Object.keys(LIST_LABELS) as (keyof AccessListView)[]).map((k) => listField(side, k)),
      )}
      <div className="field">
        <label htmlFor={`${id}-ext`}>Shared (Slack Connect) channels allowed</label>
        <textarea
          id={`${id}-ext`}
          rows={2}
          defaultValue={draft.externalChannels.join("\n")}
          onChange={(e) => setDraft({ ...draft, externalChannels: lines(e.target.value) })}
        />
      </div>
      <label>
        <input
          type="checkbox"
          checked={draft.directMessages}
          onChange={(e) => setDraft({ ...draft, directMessages: e.target.checked })}
        />{" "}
        Direct messages
      </label>
      <label>
        <input
          type="checkbox"
          checked={draft.guests}
          onChange={(e) => setDraft({ ...draft, guests: e.target.checked })}
        />{" "}
        Guest accounts
      </label>
      <div className="toolbar">
        <button type="submit">Save</button>
        <button type="button" className="secondary" onClick={props.onDone}>
          Cancel
        </button>
      </div>
      <StatusLine status={status} />
    </form>
  );
}
