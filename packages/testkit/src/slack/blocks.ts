/**
 * Minimal Block Kit validation: enough of Slack's schema (block types, text
 * limits, element counts) that a malformed message fails here the way it fails
 * on Slack, with `invalid_blocks` and json-pointer messages in the same style.
 */

export type BlocksCheck =
  | { ok: true; blocks: Record<string, unknown>[] }
  | { ok: false; error: "invalid_blocks" | "invalid_blocks_format"; errors: string[] };

const BLOCK_TYPES = new Set([
  "section",
  "header",
  "divider",
  "context",
  "actions",
  "image",
  "rich_text",
  "markdown",
  "input",
  "file",
  "video",
  "table",
  "context_actions",
]);

const INTERACTIVE_ELEMENTS = new Set([
  "button",
  "checkboxes",
  "datepicker",
  "datetimepicker",
  "email_text_input",
  "external_select",
  "multi_external_select",
  "static_select",
  "multi_static_select",
  "users_select",
  "multi_users_select",
  "conversations_select",
  "multi_conversations_select",
  "channels_select",
  "multi_channels_select",
  "number_input",
  "overflow",
  "plain_text_input",
  "radio_buttons",
  "rich_text_input",
  "timepicker",
  "url_text_input",
  "workflow_button",
  "file_input",
  "feedback_buttons",
  "icon_button",
]);

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

class Checker {
  readonly errors: string[] = [];

  fail(message: string, pointer: string): void {
    this.errors.push(`${message} [json-pointer:${pointer}]`);
  }

  text(
    value: unknown,
    pointer: string,
    opts: { max: number; plainOnly?: boolean; required?: boolean },
  ): void {
    if (value === undefined) {
      if (opts.required !== false) this.fail("missing required field: text", pointer);
      return;
    }
    if (!isObj(value)) {
      this.fail("failed to match all allowed schemas", pointer);
      return;
    }
    const type = value.type;
    if (type !== "plain_text" && (opts.plainOnly || type !== "mrkdwn")) {
      this.fail("failed to match all allowed schemas", pointer);
      this.fail(
        `must be ${opts.plainOnly ? "plain_text" : "one of plain_text, mrkdwn"}`,
        `${pointer}/type`,
      );
      return;
    }
    this.string(value.text, `${pointer}/text`, opts.max, 1);
  }

  string(value: unknown, pointer: string, max: number, min = 0): void {
    if (typeof value !== "string") {
      this.fail("must be a string", pointer);
      return;
    }
    if (value.length < min) this.fail(`must be more than ${min - 1} characters`, pointer);
    if (value.length > max) this.fail(`must be less than ${max + 1} characters`, pointer);
  }

  element(value: unknown, pointer: string, allowed: "any" | "context"): void {
    if (!isObj(value) || typeof value.type !== "string") {
      this.fail("failed to match all allowed schemas", pointer);
      return;
    }
    const type = value.type;
    if (allowed === "context") {
      if (type === "image") this.image(value, pointer, false);
      else if (type === "plain_text" || type === "mrkdwn") this.text(value, pointer, { max: 3000 });
      else this.fail("failed to match all allowed schemas", pointer);
      return;
    }
    if (type === "image") {
      this.image(value, pointer, false);
      return;
    }
    if (!INTERACTIVE_ELEMENTS.has(type)) {
      this.fail(`unsupported type: ${type}`, `${pointer}/type`);
      return;
    }
    if (value.action_id !== undefined) this.string(value.action_id, `${pointer}/action_id`, 255, 1);
    if (type === "button") {
      this.text(value.text, `${pointer}/text`, { max: 75, plainOnly: true });
      if (value.value !== undefined) this.string(value.value, `${pointer}/value`, 2000);
      if (value.url !== undefined) this.string(value.url, `${pointer}/url`, 3000);
      if (value.style !== undefined && value.style !== "primary" && value.style !== "danger") {
        this.fail("must be one of primary, danger", `${pointer}/style`);
      }
    }
  }

  image(value: Obj, pointer: string, isBlock: boolean): void {
    if (value.image_url === undefined && value.slack_file === undefined) {
      this.fail("must provide either image_url or slack_file", pointer);
    }
    if (value.image_url !== undefined)
      this.string(value.image_url, `${pointer}/image_url`, 3000, 1);
    this.string(value.alt_text, `${pointer}/alt_text`, 2000, 1);
    if (isBlock && value.title !== undefined) {
      this.text(value.title, `${pointer}/title`, { max: 2000, plainOnly: true });
    }
  }

  elements(value: unknown, pointer: string, max: number, kind: "any" | "context"): void {
    if (!Array.isArray(value)) {
      this.fail("must be an array", pointer);
      return;
    }
    if (value.length === 0) this.fail("must contain at least 1 items", pointer);
    if (value.length > max) this.fail(`no more than ${max} items allowed`, pointer);
    value.forEach((el, i) => {
      this.element(el, `${pointer}/${i}`, kind);
    });
  }

  block(block: unknown, pointer: string): void {
    if (!isObj(block)) {
      this.fail("must be an object", pointer);
      return;
    }
    if (typeof block.type !== "string") {
      this.fail("missing required field: type", pointer);
      return;
    }
    if (!BLOCK_TYPES.has(block.type)) {
      this.fail("failed to match all allowed schemas", pointer);
      this.fail(`unsupported type: ${block.type}`, `${pointer}/type`);
      return;
    }
    if (block.block_id !== undefined) this.string(block.block_id, `${pointer}/block_id`, 255, 1);
    switch (block.type) {
      case "section": {
        if (block.text === undefined && block.fields === undefined) {
          this.fail("must provide either text or fields", pointer);
        }
        if (block.text !== undefined) this.text(block.text, `${pointer}/text`, { max: 3000 });
        if (block.fields !== undefined) {
          if (!Array.isArray(block.fields)) this.fail("must be an array", `${pointer}/fields`);
          else {
            if (block.fields.length > 10)
              this.fail("no more than 10 items allowed", `${pointer}/fields`);
            block.fields.forEach((f, i) => {
              this.text(f, `${pointer}/fields/${i}`, { max: 2000 });
            });
          }
        }
        if (block.accessory !== undefined)
          this.element(block.accessory, `${pointer}/accessory`, "any");
        break;
      }
      case "header":
        this.text(block.text, `${pointer}/text`, { max: 150, plainOnly: true });
        break;
      case "context":
        this.elements(block.elements, `${pointer}/elements`, 10, "context");
        break;
      case "actions":
        this.elements(block.elements, `${pointer}/elements`, 25, "any");
        break;
      case "image":
        this.image(block, pointer, true);
        break;
      case "markdown":
        this.string(block.text, `${pointer}/text`, 12_000, 1);
        break;
      case "rich_text":
        if (!Array.isArray(block.elements)) this.fail("must be an array", `${pointer}/elements`);
        break;
      case "input":
        this.text(block.label, `${pointer}/label`, { max: 2000, plainOnly: true });
        this.element(block.element, `${pointer}/element`, "any");
        break;
      default:
        break;
    }
  }
}

/** Validates message blocks (form bodies carry them as a JSON string). */
export function checkBlocks(input: unknown, maxBlocks = 50): BlocksCheck {
  let value = input;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return { ok: false, error: "invalid_blocks_format", errors: [] };
    }
  }
  if (!Array.isArray(value)) return { ok: false, error: "invalid_blocks_format", errors: [] };
  const checker = new Checker();
  if (value.length > maxBlocks) checker.fail(`no more than ${maxBlocks} items allowed`, "/blocks");
  const seen = new Set<string>();
  value.forEach((block, i) => {
    checker.block(block, `/blocks/${i}`);
    const id = isObj(block) ? block.block_id : undefined;
    if (typeof id === "string") {
      if (seen.has(id)) checker.fail(`duplicate block_id: ${id}`, `/blocks/${i}/block_id`);
      seen.add(id);
    }
  });
  if (checker.errors.length > 0) {
    return { ok: false, error: "invalid_blocks", errors: checker.errors };
  }
  return { ok: true, blocks: value as Record<string, unknown>[] };
}

/** Interactive elements with their enclosing block, for finding a clicked button. */
export function* interactiveElements(
  blocks: unknown[] | undefined,
): Generator<{ blockId: string | undefined; element: Obj }> {
  for (const block of blocks ?? []) {
    if (!isObj(block)) continue;
    const blockId = typeof block.block_id === "string" ? block.block_id : undefined;
    if (Array.isArray(block.elements)) {
      for (const element of block.elements) if (isObj(element)) yield { blockId, element };
    }
    if (isObj(block.accessory)) yield { blockId, element: block.accessory };
  }
}

function shortId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  let out = "";
  for (let i = 0; i < 5; i++) out += alphabet[Math.floor(Math.random() * alphabet.length)];
  return out;
}

/** Slack fills in block_id and action_id when a message omits them; so do we. */
export function normalizeBlocks(blocks: Record<string, unknown>[]): Record<string, unknown>[] {
  const copy = structuredClone(blocks);
  for (const block of copy) {
    if (block.block_id === undefined) block.block_id = shortId();
    for (const { element } of interactiveElements([block])) {
      if (element.type !== "image" && element.action_id === undefined)
        element.action_id = shortId();
    }
  }
  return copy;
}
