/**
 * Discord's limits on a message body (content 2000 characters; at most five
 * action rows of five buttons or one select menu; labels 80, custom ids 100;
 * select options 25), refused as Discord refuses them: 400 code 50035.
 */
export function checkMessageBody(body: Record<string, unknown>, creating: boolean): unknown {
  const errors: string[] = [];
  const content = body.content;
  if (content !== undefined && (typeof content !== "string" || content.length > 2000))
    errors.push("content: Must be 2000 or fewer in length.");
  const rows = body.components;
  if (rows !== undefined) {
    if (!Array.isArray(rows) || rows.length > 5)
      errors.push("components: Must be 5 or fewer in length.");
    for (const row of Array.isArray(rows) ? rows : []) errors.push(...checkRow(row));
  }
  if (
    creating &&
    !content &&
    !(Array.isArray(rows) && rows.length) &&
    !body.embeds &&
    !body.__files
  )
    errors.push("Cannot send an empty message");
  if (errors.length === 0) return undefined;
  return {
    message: "Invalid Form Body",
    code: 50035,
    errors: { _errors: errors.map((message) => ({ code: "BASE_TYPE_INVALID", message })) },
  };
}

function checkRow(row: { type?: number; components?: unknown[] }): string[] {
  if (row.type !== 1 || !Array.isArray(row.components))
    return ["components: an action row holds components"];
  const items = row.components as {
    type?: number;
    style?: number;
    label?: string;
    custom_id?: string;
    url?: string;
    options?: { label?: string; value?: string }[];
  }[];
  const errors: string[] = [];
  const selects = items.filter((c) => c.type === 3).length;
  if (items.length === 0 || items.length > 5 || (selects > 0 && items.length > 1))
    errors.push("components: a row holds 1 to 5 buttons or one select menu");
  for (const c of items) {
    if (c.type === 2) {
      if (!c.label || c.label.length > 80)
        errors.push("label: Must be between 1 and 80 in length.");
      if (c.style === 5 ? !c.url : !c.custom_id || c.custom_id.length > 100)
        errors.push("custom_id: Must be between 1 and 100 in length.");
    } else if (c.type === 3) {
      if (!c.custom_id || c.custom_id.length > 100)
        errors.push("custom_id: Must be between 1 and 100 in length.");
      const options = c.options ?? [];
      if (options.length === 0 || options.length > 25)
        errors.push("options: Must be between 1 and 25 in length.");
      for (const o of options)
        if (!o.label || o.label.length > 100 || !o.value || o.value.length > 100)
          errors.push("options: label and value must be between 1 and 100 in length.");
    } else {
      errors.push(`component type ${c.type} is not emulated`);
    }
  }
  return errors;
}
