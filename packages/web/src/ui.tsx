import { type ReactNode, useId } from "react";

/** Small shared building blocks: sections, status messages, form rows. */

export function Section(props: {
  title: string;
  description?: ReactNode;
  children: ReactNode;
  id?: string;
}) {
  const headingId = useId();
  return (
    <section className="card" aria-labelledby={headingId} id={props.id}>
      <h2 id={headingId}>{props.title}</h2>
      {props.description ? <p className="muted">{props.description}</p> : null}
      {props.children}
    </section>
  );
}

export type Status = { kind: "ok" | "error"; text: string } | undefined;

/** Announced to screen readers as it changes. */
export function StatusLine(props: { status: Status }) {
  return (
    <div className={`status ${props.status?.kind ?? ""}`} role="status" aria-live="polite">
      {props.status?.text ?? ""}
    </div>
  );
}

export function Badge(props: { children: ReactNode; tone?: "ok" | "warn" | "muted" | "danger" }) {
  return <span className={`badge ${props.tone ?? "muted"}`}>{props.children}</span>;
}

/** A one-field form: label, input, submit; Enter submits. */
export function InlineForm(props: {
  label: string;
  placeholder?: string;
  button: string;
  type?: "text" | "password";
  disabled?: boolean;
  value: string;
  onChange(value: string): void;
  onSubmit(): void;
  error?: string;
  hint?: string;
  autoComplete?: string;
}) {
  const id = useId();
  const errorId = `${id}-error`;
  const hintId = `${id}-hint`;
  const described = [props.error ? errorId : "", props.hint ? hintId : ""]
    .filter(Boolean)
    .join(" ");
  return (
    <form
      className="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        props.onSubmit();
      }}
    >
      <label htmlFor={id}>{props.label}</label>
      <div className="row">
        <input
          id={id}
          type={props.type ?? "text"}
          value={props.value}
          placeholder={props.placeholder}
          autoComplete={props.autoComplete ?? "off"}
          spellCheck={false}
          aria-invalid={props.error ? true : undefined}
          aria-describedby={described || undefined}
          onChange={(e) => props.onChange(e.target.value)}
        />
        <button type="submit" disabled={props.disabled || !props.value.trim()}>
          {props.button}
        </button>
      </div>
      {props.hint ? (
        <p className="hint" id={hintId}>
          {props.hint}
        </p>
      ) : null}
      {props.error ? (
        <p className="field-error" id={errorId}>
          {props.error}
        </p>
      ) : null}
    </form>
  );
}

export function relativeTime(at: number | undefined, now = Date.now()): string {
  if (!at) return "never";
  const s = Math.round((now - at) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return new Date(at).toLocaleDateString();
}
