import { useId, useState } from "react";
import type { Client } from "../api.ts";
import { Badge, Section } from "../ui.tsx";
import type { Act } from "./SettingsApp.tsx";
import type { SettingsView } from "./types.ts";

type CatalogSkill = SettingsView["skills"]["catalog"][number];

const enc = encodeURIComponent;

/** What a skill brings with it, one line per kind (nothing when it brings only instructions). */
export function SkillNeeds({ skill }: { skill: CatalogSkill }) {
  const rows: [string, string[]][] = [
    ["Network", skill.domains],
    ["Packages", skill.packages],
    ["MCP servers", skill.mcp],
    ["Secrets it uses", skill.secrets],
  ];
  const shown = rows.filter(([, list]) => list.length > 0);
  if (shown.length === 0) return <p className="hint">Instructions only: it brings nothing else.</p>;
  return (
    <dl className="needs">
      {shown.map(([label, list]) => (
        <div key={label}>
          <dt>{label}</dt>
          <dd className="mono">{list.join(", ")}</dd>
        </div>
      ))}
    </dl>
  );
}

/**
 * The team's skills: each with its description and what it brings. Installing
 * one first shows what the agent gets with it (network access, packages, MCP
 * servers, secrets it uses) and asks to confirm.
 */
export function SkillsSection(props: {
  view: SettingsView;
  client: Client;
  act: Act;
  busy: boolean;
}) {
  const { view, client, act, busy } = props;
  const { catalog, installed, fromAgent } = view.skills;
  const [confirming, setConfirming] = useState<string>();
  return (
    <Section
      title="Skills"
      description="Instructions and tools your agent can use, from your team's catalog."
    >
      {catalog.length === 0 ? (
        <p className="muted">Your team has not added any skills yet.</p>
      ) : null}
      <ul className="list">
        {catalog.map((s) => {
          const team = fromAgent.includes(s.name);
          const mine = installed.includes(s.name);
          return (
            <li key={s.name} className="item column">
              <div className="item-head">
                <span className="name">{s.name}</span> {team ? <Badge>team</Badge> : null}
                {mine ? <Badge tone="ok">installed</Badge> : null}
                <span className="spacer" />
                {team || confirming === s.name ? null : mine ? (
                  <button
                    type="button"
                    className="secondary"
                    disabled={busy}
                    aria-label={`Remove skill ${s.name}`}
                    onClick={() =>
                      act(`Removed ${s.name}.`, () =>
                        client.send("DELETE", `/skills/${enc(s.name)}`),
                      )
                    }
                  >
                    Remove
                  </button>
                ) : (
                  <button
                    type="button"
                    disabled={busy}
                    aria-label={`Install skill ${s.name}`}
                    onClick={() => setConfirming(s.name)}
                  >
                    Install
                  </button>
                )}
              </div>
              {s.description ? <p className="hint">{s.description}</p> : null}
              {confirming === s.name ? (
                <ConfirmInstall
                  skill={s}
                  busy={busy}
                  cancel={() => setConfirming(undefined)}
                  confirm={async () => {
                    const ok = await act(`Installed ${s.name}.`, () =>
                      client.send("POST", "/skills", { name: s.name }),
                    );
                    if (ok) setConfirming(undefined);
                  }}
                />
              ) : (
                <SkillNeeds skill={s} />
              )}
            </li>
          );
        })}
      </ul>
    </Section>
  );
}

function ConfirmInstall(props: {
  skill: CatalogSkill;
  busy: boolean;
  confirm(): void;
  cancel(): void;
}) {
  const { skill } = props;
  const headingId = useId();
  return (
    <fieldset className="confirm" aria-labelledby={headingId}>
      <p id={headingId}>
        Installing <strong>{skill.name}</strong> gives your agent its instructions and files, and:
      </p>
      <SkillNeeds skill={skill} />
      {skill.secrets.length ? (
        <p className="hint">
          Your agent may ask you for these secrets; you enter them here, never in the chat.
        </p>
      ) : null}
      <div className="actions">
        <button
          type="button"
          disabled={props.busy}
          aria-label={`Confirm install ${skill.name}`}
          onClick={props.confirm}
        >
          Install {skill.name}
        </button>
        <button type="button" className="secondary" onClick={props.cancel}>
          Cancel
        </button>
      </div>
    </fieldset>
  );
}
