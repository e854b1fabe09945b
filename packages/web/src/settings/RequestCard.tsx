import { useEffect, useId, useState } from "react";
import { type Client, errorText } from "../api.ts";
import type { Act } from "./SettingsApp.tsx";
import type { CapabilityKind, RequestView, SettingsView } from "./types.ts";

function question(kind: CapabilityKind, value: string) {
  switch (kind) {
    case "domain":
      return (
        <>
          Allow <strong className="mono">{value}</strong> for your agent?
        </>
      );
    case "skill":
      return (
        <>
          Install the skill <strong>{value}</strong> for your agent?
        </>
      );
    case "package":
      return (
        <>
          Add the package <strong className="mono">{value}</strong> to your agent's environment?
        </>
      );
    case "mcp":
      return (
        <>
          Connect the MCP server <strong>{value}</strong> to your agent?
        </>
      );
    case "secret":
      return (
        <>
          Your agent asks for the secret <strong className="mono">{value}</strong>.
        </>
      );
  }
}

const OUTCOME: Record<string, string> = {
  granted: "Approved. Your agent continues in the chat.",
  approve: "Approved. Your agent continues in the chat.",
  always: "Always allowed. Your agent continues in the chat.",
  denied: "Denied. Your agent was told.",
  deny: "Denied. Your agent was told.",
};

/** A request the agent made in the chat, answered here (the page was opened for it). */
export function RequestCard(props: {
  client: Client;
  requestId: string;
  onAnswered(): Promise<void>;
}) {
  const { client, requestId } = props;
  const [request, setRequest] = useState<RequestView>();
  const [error, setError] = useState<string>();
  const [secret, setSecret] = useState("");
  const [sending, setSending] = useState(false);
  const [done, setDone] = useState<string>();
  const headingId = useId();
  const secretId = useId();

  useEffect(() => {
    client
      .get<RequestView>(`/requests/${encodeURIComponent(requestId)}`)
      .then(setRequest)
      .catch((err) => setError(errorText(err)));
  }, [client, requestId]);

  const answer = async (choice: string) => {
    setSending(true);
    setError(undefined);
    try {
      const body: { choice: string; value?: string } = { choice };
      if (choice === "granted" && secret) body.value = secret;
      const answered = await client.send<RequestView>(
        "POST",
        `/requests/${encodeURIComponent(requestId)}/answer`,
        body,
      );
      setRequest(answered);
      setSecret("");
      setDone(OUTCOME[choice] ?? "Answered.");
      await props.onAnswered().catch(() => {});
    } catch (err) {
      setError(errorText(err));
    } finally {
      setSending(false);
    }
  };

  if (!request)
    return (
      <section className="card request" aria-labelledby={headingId}>
        <h2 id={headingId}>Your agent's request</h2>
        {error ? <p className="field-error">{error}</p> : <p className="muted">Loading…</p>}
      </section>
    );

  const event = request.event;
  const isSecret = event.type === "capability_request" && event.kind === "secret";
  const finished =
    done ??
    (event.type === "question" && request.status === "pending"
      ? "Answer this question in the chat."
      : undefined) ??
    (request.status === "expired"
      ? "This request expired: the agent stopped waiting. Ask it again in the chat."
      : request.status === "answered"
        ? `Already answered${request.answer?.choice ? ` (${request.answer.choice})` : ""}.`
        : undefined);

  return (
    <section className="card request" aria-labelledby={headingId}>
      <h2 id={headingId}>Your agent's request</h2>
      {event.type === "capability_request" ? (
        <>
          <p className="question">{question(event.kind, event.value)}</p>
          {event.reason ? <p className="reason">“{event.reason}”</p> : null}
        </>
      ) : event.type === "approval_request" ? (
        <>
          <p className="question">
            Allow your agent to use <strong className="mono">{event.tool}</strong>?
          </p>
          <pre className="summary">{event.summary}</pre>
        </>
      ) : (
        <p className="question">{event.prompt}</p>
      )}
      {finished ? (
        <p className="outcome" role="status">
          {finished}
        </p>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void answer(event.type === "approval_request" ? "approve" : "granted");
          }}
        >
          {isSecret ? (
            <div className="field">
              <label htmlFor={secretId}>Value of {event.value}</label>
              <input
                id={secretId}
                type="password"
                autoComplete="off"
                value={secret}
                onChange={(e) => setSecret(e.target.value)}
              />
              <p className="hint">Stored encrypted; your agent only ever sees a placeholder.</p>
            </div>
          ) : null}
          <div className="actions">
            <button type="submit" disabled={sending || (isSecret && !secret)}>
              {isSecret ? "Save and approve" : "Approve"}
            </button>
            {event.type === "approval_request" ? (
              <button
                type="button"
                className="secondary"
                disabled={sending}
                onClick={() => answer("always")}
              >
                Always allow
              </button>
            ) : null}
            <button
              type="button"
              className="danger"
              disabled={sending}
              onClick={() => answer(event.type === "approval_request" ? "deny" : "denied")}
            >
              Deny
            </button>
          </div>
        </form>
      )}
      {error ? (
        <p className="field-error" role="alert">
          {error}
        </p>
      ) : null}
    </section>
  );
}

export interface Prefill {
  kind: "domain" | "skill" | "package" | "mcp";
  value: string;
}

/** A change the link suggests (`?domain=api.github.com`), confirmed with one click. */
export function prefillFromUrl(params: URLSearchParams): Prefill | undefined {
  for (const kind of ["domain", "skill", "package", "mcp"] as const) {
    const value = params.get(kind);
    if (value) return { kind, value };
  }
  return undefined;
}

export function PrefillCard(props: { client: Client; prefill: Prefill; act: Act; busy: boolean }) {
  const { client, prefill } = props;
  const [dismissed, setDismissed] = useState(false);
  const headingId = useId();
  if (dismissed) return null;
  const apply = () => {
    const change = (): Promise<SettingsView> => {
      switch (prefill.kind) {
        case "domain":
          return client.send("POST", "/domains", { name: prefill.value });
        case "skill":
          return client.send("POST", "/skills", { name: prefill.value });
        case "package":
          return client.send("POST", "/packages", { name: prefill.value });
        case "mcp":
          return client.send("POST", `/mcp/${encodeURIComponent(prefill.value)}`);
      }
    };
    void props.act(`Added ${prefill.value}.`, change).then((ok) => ok && setDismissed(true));
  };
  return (
    <section className="card request" aria-labelledby={headingId}>
      <h2 id={headingId}>Suggested change</h2>
      <p className="question">{question(prefill.kind, prefill.value)}</p>
      <div className="actions">
        <button type="button" disabled={props.busy} onClick={apply}>
          Approve
        </button>
        <button type="button" className="secondary" onClick={() => setDismissed(true)}>
          Dismiss
        </button>
      </div>
    </section>
  );
}
