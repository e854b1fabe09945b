import { useEffect, useState } from "react";
import { type Client, errorText } from "../api.ts";
import { InlineForm, Section } from "../ui.tsx";
import type { Act } from "./SettingsApp.tsx";
import type { SettingsView } from "./types.ts";

/**
 * "Linked accounts" (docs/identity.md): the person's identities on other
 * platforms that share these settings, keys, skills and memory. Linking is a
 * two-code handshake: a code made on one account is entered on the other,
 * which answers with a finishing code to enter back on the first. Any
 * identity of the account can be unlinked.
 */

interface LinksView {
  identity: string;
  account: string;
  identities: string[];
  /** Set when the team's OpenID Connect provider is configured. */
  oidc?: { name: string };
  /** After entering a first code: the finishing code to enter on the account that made it. */
  pending?: { code: string; expiresAt: string };
  /** After entering a finishing code: the identity that joined. */
  joined?: string;
}

export function LinksSection({ client, act, busy }: { client: Client; act: Act; busy: boolean }) {
  const [view, setView] = useState<LinksView>();
  const [error, setError] = useState<string>();
  const [code, setCode] = useState<{ code: string; expiresAt: string }>();
  const [typed, setTyped] = useState("");
  useEffect(() => {
    client
      .get<LinksView>("/links")
      .then(setView)
      .catch((err: unknown) => setError(errorText(err)));
  }, [client]);
  const change = (done: string, method: "POST" | "DELETE", path: string, body?: unknown) =>
    act(done, async () => {
      setView(await client.send<LinksView>(method, path, body));
      return client.get<SettingsView>("/state");
    });
  const others = view?.identities.filter((i) => i !== view.identity) ?? [];
  return (
    <Section
      title="Linked accounts"
      description="Your accounts on other chat platforms that share these settings, keys, skills and memory. Each keeps its own conversations and workspace."
    >
      {error ? <p className="field-error">{error}</p> : null}
      {view && others.length === 0 ? <p className="muted">No other account is linked.</p> : null}
      <ul className="list">
        {others.map((identity) => (
          <li key={identity} className="item">
            <span className="grow mono">
              {identity}
              {identity === view?.account ? <span className="muted small"> · primary</span> : null}
            </span>
            <button
              type="button"
              className="danger"
              disabled={busy}
              aria-label={`Unlink ${identity}`}
              onClick={() =>
                change("Unlinked.", "DELETE", `/links/${encodeURIComponent(identity)}`)
              }
            >
              Unlink
            </button>
          </li>
        ))}
      </ul>
      {others.length > 0 && view ? (
        <button
          type="button"
          className="secondary"
          disabled={busy}
          onClick={() =>
            change(
              "This account is unlinked.",
              "DELETE",
              `/links/${encodeURIComponent(view.identity)}`,
            )
          }
        >
          Unlink this account
        </button>
      ) : null}
      <div className="privacy-actions">
        <button
          type="button"
          className="secondary"
          disabled={busy}
          onClick={async () => {
            try {
              setCode(await client.send("POST", "/links/code"));
            } catch (err) {
              setError(errorText(err));
            }
          }}
        >
          Link another account
        </button>
        {view?.oidc ? (
          <button
            type="button"
            className="secondary"
            disabled={busy}
            onClick={async () => {
              try {
                const { url } = await client.send<{ url: string }>("POST", "/links/oidc");
                window.location.assign(url);
              } catch (err) {
                setError(errorText(err));
              }
            }}
          >
            Sign in with {view.oidc.name}
          </button>
        ) : null}
      </div>
      {code ? (
        <p>
          Your code is <code>{code.code}</code>, valid for 10 minutes and once. On the other
          account, send <code>link {code.code}</code> to the bot, or enter it on that account's
          settings page; it answers with a finishing code to enter here. Never give it to anyone
          else.
        </p>
      ) : null}
      {view?.pending ? (
        <p>
          Nothing is linked yet. Your finishing code is <code>{view.pending.code}</code>, valid for
          10 minutes and once: enter it on the account where you got the first code (or send{" "}
          <code>link {view.pending.code}</code> there). If someone else gave you the first code,
          stop here.
        </p>
      ) : null}
      {view?.joined ? (
        <p>
          <span className="mono">{view.joined}</span> joined this account. If that was not you,
          unlink it above.
        </p>
      ) : null}
      <InlineForm
        label="Enter a code from your other account"
        placeholder="ABCDE-FGHJK"
        button="Link"
        value={typed}
        disabled={busy}
        autoComplete="off"
        hint="This account then uses the other account's settings, keys and memory; unlinking gives it back its own."
        onChange={setTyped}
        onSubmit={async () => {
          if (await change("Code accepted.", "POST", "/links/confirm", { code: typed }))
            setTyped("");
        }}
      />
    </Section>
  );
}
