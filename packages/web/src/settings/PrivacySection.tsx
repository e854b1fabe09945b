import { useId, useState } from "react";
import { type Client, errorText } from "../api.ts";
import { Section, type Status } from "../ui.tsx";

/** What the person types to confirm an erasure (the gateway checks the same words). */
export const ERASE_CONFIRMATION = "erase everything";

/**
 * "Your data": download everything the gateway holds about the person, or
 * erase it (docs/retention.md). The download goes through the client, not a
 * link, so a Telegram Mini App's header session works too.
 */
export function PrivacySection(props: {
  client: Client;
  busy: boolean;
  setStatus: (s: Status) => void;
  onErased: () => void;
}) {
  const { client, busy, setStatus, onErased } = props;
  const [confirming, setConfirming] = useState(false);
  const [typed, setTyped] = useState("");
  const [working, setWorking] = useState(false);
  const inputId = useId();

  const download = async () => {
    setWorking(true);
    try {
      const bundle = await client.get<{ exportedAt: string }>("/privacy/export");
      const blob = new Blob([`${JSON.stringify(bundle, null, 1)}\n`], { type: "application/json" });
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = `lobu-export-${bundle.exportedAt.slice(0, 10)}.json`;
      a.click();
      URL.revokeObjectURL(url);
      setStatus({ kind: "ok", text: "Your data was downloaded." });
    } catch (err) {
      setStatus({ kind: "error", text: errorText(err) });
    } finally {
      setWorking(false);
    }
  };

  const erase = async () => {
    setWorking(true);
    try {
      await client.send("POST", "/privacy/erase", { confirm: typed });
      onErased();
    } catch (err) {
      setStatus({ kind: "error", text: errorText(err) });
    } finally {
      setWorking(false);
    }
  };

  return (
    <Section
      title="Your data"
      description="Download everything this gateway keeps about you, or erase it. Secrets are listed by name only."
    >
      <div className="privacy-actions">
        <button type="button" className="secondary" disabled={busy || working} onClick={download}>
          Download my data
        </button>
        {confirming ? null : (
          <button
            type="button"
            className="danger"
            disabled={busy || working}
            onClick={() => setConfirming(true)}
          >
            Erase everything…
          </button>
        )}
      </div>
      {confirming ? (
        <div className="confirm">
          <p>
            This deletes your settings, secrets, conversations and your agent's workspace, on every
            agent, and signs you out. It cannot be undone. In channels where one agent serves
            everyone, the agent's own memory of the channel stays.
          </p>
          <label htmlFor={inputId}>
            Type <code>{ERASE_CONFIRMATION}</code> to confirm
          </label>
          <input
            id={inputId}
            value={typed}
            autoComplete="off"
            onChange={(e) => setTyped(e.target.value)}
          />
          <div className="privacy-actions">
            <button
              type="button"
              className="danger"
              disabled={working || typed !== ERASE_CONFIRMATION}
              onClick={erase}
            >
              Erase everything
            </button>
            <button
              type="button"
              className="secondary"
              disabled={working}
              onClick={() => {
                setConfirming(false);
                setTyped("");
              }}
            >
              Cancel
            </button>
          </div>
        </div>
      ) : null}
    </Section>
  );
}
