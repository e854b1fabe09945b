import { useEffect, useState } from "react";
import { type Client, errorText } from "../api.ts";
import { Badge, InlineForm, Section } from "../ui.tsx";
import type { Act } from "./SettingsApp.tsx";
import type { SettingsView } from "./types.ts";

/**
 * What the agent keeps for the person outside their settings: their
 * schedules and reminders, and its memory of them. Each section loads its own
 * list (`/schedules`, `/memory`) and changes go through `act`, like every
 * other change on the page.
 */

interface Props {
  client: Client;
  act: Act;
  busy: boolean;
}

interface ScheduleView {
  id: string;
  kind: "once" | "cron";
  cron?: string;
  timezone: string;
  text: string;
  nextRunAt: string;
  runs: number;
  platform: string;
  channelId: string;
}

interface MemoryEntryView {
  id: string;
  text: string;
  updatedAt: string;
  source?: { platform: string; channelId: string };
}

interface MemoryView {
  entries: MemoryEntryView[];
  limits: { maxEntries: number; maxEntryChars: number };
}

const enc = encodeURIComponent;

/** The list at `path`, loaded once; `set` replaces it after a change. */
function useList<T>(client: Client, path: string) {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    let cancelled = false;
    client
      .get<T>(path)
      .then((d) => !cancelled && setData(d))
      .catch((err: unknown) => !cancelled && setError(errorText(err)));
    return () => {
      cancelled = true;
    };
  }, [client, path]);
  return { data, error, set: setData };
}

function when(iso: string, timezone: string): string {
  try {
    return new Intl.DateTimeFormat(undefined, {
      dateStyle: "medium",
      timeStyle: "short",
      timeZone: timezone,
    }).format(new Date(iso));
  } catch {
    return iso;
  }
}

export function SchedulesSection({ client, act, busy }: Props) {
  const list = useList<{ schedules: ScheduleView[] }>(client, "/schedules");
  const schedules = list.data?.schedules ?? [];
  return (
    <Section
      title="Schedules"
      description="Reminders and recurring tasks you asked your agent for. At each time it runs in the conversation where you asked."
    >
      {list.error ? <p className="field-error">{list.error}</p> : null}
      {list.data && schedules.length === 0 ? (
        <p className="muted">None. Ask your agent, e.g. "remind me tomorrow at 9 to call Bob".</p>
      ) : null}
      <ul className="list">
        {schedules.map((s) => (
          <li key={s.id} className="item">
            <span className="grow">
              <span className="name">{s.text}</span>
              <br />
              <span className="muted small">
                {s.kind === "cron" ? (
                  <>
                    <Badge>repeats</Badge> <code>{s.cron}</code> ·{" "}
                  </>
                ) : null}
                next {when(s.nextRunAt, s.timezone)} ({s.timezone}) · {s.platform} {s.channelId}
              </span>
            </span>
            <button
              type="button"
              className="danger"
              disabled={busy}
              aria-label={`Cancel schedule ${s.text}`}
              onClick={() =>
                act("Schedule cancelled.", async () => {
                  list.set(await client.send("DELETE", `/schedules/${enc(s.id)}`));
                  return client.get<SettingsView>("/state");
                })
              }
            >
              Cancel
            </button>
          </li>
        ))}
      </ul>
    </Section>
  );
}

export function MemorySection({ client, act, busy }: Props) {
  const list = useList<MemoryView>(client, "/memory");
  const [fresh, setFresh] = useState("");
  const [editing, setEditing] = useState<{ id: string; text: string }>();
  const entries = list.data?.entries ?? [];
  const change = (done: string, method: "POST" | "PUT" | "DELETE", path: string, body?: unknown) =>
    act(done, async () => {
      list.set(await client.send<MemoryView>(method, path, body));
      return client.get<SettingsView>("/state");
    });
  return (
    <Section
      title="Memory"
      description="What your agent remembers about you, in all your conversations with it. Only you see it; edit or delete anything."
    >
      {list.error ? <p className="field-error">{list.error}</p> : null}
      {list.data && entries.length === 0 ? <p className="muted">Nothing yet.</p> : null}
      <ul className="list">
        {entries.map((e) =>
          editing?.id === e.id ? (
            <li key={e.id} className="item">
              <InlineForm
                label="Edit memory"
                button="Save"
                value={editing.text}
                disabled={busy}
                onChange={(text) => setEditing({ id: e.id, text })}
                onSubmit={async () => {
                  if (
                    await change("Memory saved.", "PUT", `/memory/${enc(e.id)}`, {
                      text: editing.text,
                    })
                  )
                    setEditing(undefined);
                }}
              />
            </li>
          ) : (
            <li key={e.id} className="item">
              <span className="grow">
                <span className="name">{e.text}</span>
                {e.source ? (
                  <span className="muted small">
                    {" "}
                    · saved in {e.source.platform} {e.source.channelId}
                  </span>
                ) : null}
              </span>
              <button
                type="button"
                className="secondary"
                disabled={busy}
                aria-label={`Edit memory ${e.text}`}
                onClick={() => setEditing({ id: e.id, text: e.text })}
              >
                Edit
              </button>
              <button
                type="button"
                className="danger"
                disabled={busy}
                aria-label={`Delete memory ${e.text}`}
                onClick={() => change("Memory deleted.", "DELETE", `/memory/${enc(e.id)}`)}
              >
                Delete
              </button>
            </li>
          ),
        )}
      </ul>
      {list.data ? (
        <InlineForm
          label="Add something your agent should remember"
          placeholder="e.g. I prefer short answers"
          button="Add"
          value={fresh}
          disabled={busy || entries.length >= list.data.limits.maxEntries}
          hint={`${entries.length} of ${list.data.limits.maxEntries} entries, up to ${list.data.limits.maxEntryChars} characters each.`}
          onChange={setFresh}
          onSubmit={async () => {
            if (await change("Memory added.", "POST", "/memory", { text: fresh })) setFresh("");
          }}
        />
      ) : null}
    </Section>
  );
}
