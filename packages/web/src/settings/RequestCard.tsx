import { bestEffort } from "@lobu/core/best-effort";
import { useEffect, useId, useState } from "react";
import { type Client, errorText } from "../api.ts";
import { SkillNeeds } from "./SkillsSection.tsx";
import type { CapabilityKind, DecisionChoice, RequestView, SettingsView } from "./types.ts";

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
          Your agent asks for the package <strong className="mono">{value}</strong>.
        </>
      );
    case "mcp":
      return (
        <>
          Your agent asks for the MCP server <strong>{value}</strong>.
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

/** A requested skill's description and what it brings, from the team's catalog. */
function SkillBrings(props: { name: string; skills?: SettingsView["skills"]["catalog"] }) {
  const skill = props.skills?.find((s) => s.name === props.name);
  if (!skill) return null;
  return (
    <>
      {skill.description ? <p className="hint">{skill.description}</p> : null}
      <SkillNeeds skill={skill} />
    </>
  );
}

const OUTCOME: { [C in DecisionChoice]: string } = {
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
  /** The team's skills: a skill request shows what the skill brings before it is approved. */
  skills?: SettingsView["skills"]["catalog"];
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

  const answer = async (choice: DecisionChoice) => {
    setSending(true);
    setError(undefined);
    try {
      const body: { choice: DecisionChoice; value?: string } = { choice };
      if (choice === "granted" && secret) body.value = secret;
      const answered = await client.send<RequestView>(
        "POST",
        `/requests/${encodeURIComponent(requestId)}/answer`,
        body,
      );
      setRequest(answered);
      setSecret("");
      setDone(OUTCOME[choice]);
      await props
        .onAnswered()
        .catch(bestEffort(console, "requests not reloaded after an answer", { requestId }));
    } catch (err) {
      setError(errorText(err));
      // The request may be settled now (refused grant, answered in the chat): show where it stands.
      await client
        .get<RequestView>(`/requests/${encodeURIComponent(requestId)}`)
        .then(setRequest)
        .catch(bestEffort(console, "request not reloaded after a failed answer", { requestId }));
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
  const unavailable =
    event.type === "approval_request" && event.displayComplete === false
      ? "This input is too long to show in full, so it cannot be approved. Deny it and ask your agent for smaller steps."
      : undefined;
  // The gateway derives the display from the exact input that will run; it is shown whole.
  const display = event.type === "approval_request" ? (event.display ?? "") : "";
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
          {event.kind === "skill" ? <SkillBrings name={event.value} skills={props.skills} /> : null}
        </>
      ) : event.type === "approval_request" ? (
        <>
          <p className="question">
            Allow your agent to use <strong className="mono">{event.tool}</strong> with exactly this
            input?
          </p>
          <pre className="summary approval-input">{display}</pre>
          {display.includes("⟦") ? (
            <p className="hint">
              ⟦…⟧ marks characters that would otherwise be invisible or misleading (runs of spaces,
              tabs, control and text-direction characters).
            </p>
          ) : null}
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
          {unavailable ? (
            <p className="notice" role="note">
              {unavailable}
            </p>
          ) : null}
          <div className="actions">
            {unavailable ? null : (
              <button type="submit" disabled={sending || (isSecret && !secret)}>
                {isSecret ? "Save and approve" : "Approve"}
              </button>
            )}
            {event.type === "approval_request" && !unavailable ? (
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
              {unavailable && event.type !== "approval_request"
                ? "Tell my agent to continue without it"
                : "Deny"}
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
