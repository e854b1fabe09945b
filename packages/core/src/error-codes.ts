import { z } from "zod";

/**
 * Every error code Lobu reports, defined once: the HTTP status a LobuError with
 * that code gets when it does not name one, and what the code means. Programs
 * branch on these codes, so they are a contract: the table of error codes in
 * docs/api.md is checked against this one by a test.
 */
export interface ErrorCodeInfo {
  /** Default HTTP status (a LobuError may name another one for a particular case). */
  status: number;
  /** One line: what went wrong. */
  meaning: string;
}

export const ERROR_CODES = {
  access_denied: {
    status: 403,
    meaning: "the agent's access rules refuse this person or channel (`details.reason`)",
  },
  agent_exists: { status: 409, meaning: "an agent with this id exists already" },
  agent_failed: {
    status: 500,
    meaning: "the agent could not answer a message, even after it was retried (a turn error)",
  },
  agent_not_found: { status: 404, meaning: "no agent has this id" },
  agent_read_only: {
    status: 409,
    meaning: "the agent is defined in lobu.toml and can be changed only there",
  },
  bad_request: { status: 400, meaning: "a platform webhook received something it does not handle" },
  bad_secret: { status: 401, meaning: "a Telegram webhook call without the right secret token" },
  bad_signature: {
    status: 401,
    meaning:
      "a Slack, WhatsApp, Discord, Teams or Google Chat request without a valid signature or token",
  },
  binding_fixed: {
    status: 409,
    meaning: "the chat is a named bot's, which always answers as its own agent",
  },
  binding_read_only: {
    status: 409,
    meaning: "the channel is bound to an agent in lobu.toml and can be changed only there",
  },
  budget_exceeded: { status: 429, meaning: "a usage budget is used up until it resets" },
  ca_incomplete: { status: 500, meaning: "the Lobu CA's key or certificate is missing" },
  ca_key_permissions: { status: 500, meaning: "the Lobu CA's key is readable by other users" },
  config_invalid: { status: 400, meaning: "lobu.toml (or a file it names) is not valid" },
  config_missing: { status: 400, meaning: "the config file named does not exist" },
  conflict: { status: 409, meaning: "the record changed concurrently; retry" },
  data_dir_locked: { status: 409, meaning: "another Lobu process uses this data dir" },
  file_not_found: { status: 404, meaning: "no file with this id, or its download expired" },
  file_path_refused: {
    status: 400,
    meaning: "a sandbox path leads outside the workspace, or is not a regular file",
  },
  file_too_large: { status: 413, meaning: "a file is larger than the configured limit" },
  file_type_refused: { status: 415, meaning: "a file's type is not among the allowed types" },
  forbidden: { status: 403, meaning: "this token, session or person may not do this" },
  host_unavailable: { status: 500, meaning: "the gateway cannot listen on this address" },
  http_error: { status: 400, meaning: "the HTTP request was refused before it reached a route" },
  init_data_used: {
    status: 401,
    meaning: "this Telegram Mini App launch already opened a settings session",
  },
  internal: { status: 500, meaning: "an unexpected error; the gateway log has the details" },
  invalid_gateway_tool: { status: 400, meaning: "a gateway tool cannot be registered as given" },
  invalid_grant: {
    status: 400,
    meaning: "a granted capability names something that does not exist",
  },
  invalid_init_data: { status: 401, meaning: "Telegram Mini App initData is missing or invalid" },
  invalid_query: {
    status: 400,
    meaning: "a query parameter is unknown, repeated or malformed (`details.parameter`)",
  },
  invalid_request: {
    status: 400,
    meaning: "the request does not match its schema (`details.issues` or `details.problems`)",
  },
  invalid_memory: {
    status: 400,
    meaning: "a memory entry is empty or longer than `memory.max_entry_chars`",
  },
  invalid_schedule: {
    status: 400,
    meaning: "a schedule's time, zone or cron is invalid, past, too far ahead or too frequent",
  },
  invalid_setting: { status: 400, meaning: "a settings change the settings page does not accept" },
  link_code_invalid: {
    status: 400,
    meaning: "the link code is unknown, used or expired: create a new one",
  },
  link_rate_limited: {
    status: 429,
    meaning: "too many link codes were created or wrong ones entered; wait 15 minutes",
  },
  link_refused: {
    status: 409,
    meaning: "the identity cannot be linked: linked elsewhere already, or the account is full",
  },
  malformed_json: { status: 400, meaning: "the body is not valid JSON" },
  master_key_invalid: { status: 500, meaning: "the master key is not 32 bytes of base64 or hex" },
  master_key_mismatch: {
    status: 500,
    meaning: "the master key is not the one the stored secrets were encrypted with",
  },
  master_key_permissions: {
    status: 500,
    meaning: "the master key file is readable by others or owned by someone else",
  },
  memory_full: {
    status: 409,
    meaning: "the person's memory holds `memory.max_entries` entries; forget some first",
  },
  message_empty: { status: 400, meaning: "the message has no text" },
  message_too_large: { status: 413, meaning: "the message is longer than the agent accepts" },
  model_not_allowed: {
    status: 403,
    meaning: "the operator does not allow this model for the agent (`models` in lobu.toml)",
  },
  no_provider: { status: 503, meaning: "no model provider is configured for the agent" },
  no_provider_key: { status: 503, meaning: "the agent's provider has no API key" },
  no_snapshot: { status: 409, meaning: "the sandbox has no snapshot to restore" },
  not_found: {
    status: 404,
    meaning: "what the request names does not exist (route, message, sandbox, token, secret, ...)",
  },
  not_provisioned: {
    status: 501,
    meaning: "this gateway cannot provide this kind of capability here (packages)",
  },
  oidc_failed: {
    status: 400,
    meaning: "OpenID Connect sign-in failed, or the sign-in is used or expired",
  },
  payload_too_large: { status: 413, meaning: "the request body is larger than the route accepts" },
  platform_config: { status: 400, meaning: "a platform's settings are incomplete" },
  port_forbidden: { status: 500, meaning: "the gateway may not listen on this port" },
  port_in_use: { status: 500, meaning: "something else listens on the gateway's port" },
  provider_unknown: { status: 400, meaning: "no provider has this id" },
  record_unreadable: {
    status: 500,
    meaning: "a stored record is corrupt or from an incompatible version; the log names its key",
  },
  replayed_request: {
    status: 409,
    meaning: "a copy of a signed Slack, Discord or Google Chat request that was already accepted",
  },
  request_not_answerable: {
    status: 409,
    meaning: "the request is unknown, already answered or expired, or not this answer's to give",
  },
  person_busy: {
    status: 409,
    meaning: "a turn of this person is running or queued: their data cannot be erased yet",
  },
  sandbox_closed: { status: 503, meaning: "the sandbox driver is shutting down" },
  sandbox_driver_closed: { status: 503, meaning: "the gateway is shutting down" },
  sandbox_env_invalid: { status: 500, meaning: "an environment variable for a sandbox is invalid" },
  sandbox_elsewhere: {
    status: 409,
    meaning: "the sandbox runs on another gateway sharing this store",
  },
  sandbox_exec_unavailable: {
    status: 500,
    meaning: "the tools exec needs (util-linux nsenter, setpriv) are missing or too old",
  },
  sandbox_exec_unsupported: {
    status: 501,
    meaning: "this sandbox driver cannot run commands in a sandbox",
  },
  sandbox_id_invalid: { status: 500, meaning: "a sandbox id has characters it may not have" },
  sandbox_not_running: { status: 409, meaning: "the sandbox is not running" },
  sandbox_running: { status: 409, meaning: "the sandbox is running already" },
  sandbox_start_failed: { status: 500, meaning: "the sandbox's worker did not start" },
  sandbox_unavailable: { status: 500, meaning: "this sandbox driver cannot run on this machine" },
  sandbox_volume_busy: {
    status: 503,
    meaning: "the sandbox's disk image is still attached from its last run",
  },
  sandbox_volume_invalid: {
    status: 500,
    meaning: "a virtual sandbox's volume is not where it must be",
  },
  schedule_limit: {
    status: 409,
    meaning: "the person has `schedules.max_per_person` schedules; cancel some first",
  },
  secret_conflict: { status: 409, meaning: "the secret is being changed concurrently; retry" },
  secret_invalid: { status: 400, meaning: "the secret's name or value is not valid" },
  secret_not_found: { status: 404, meaning: "no secret has this name in this scope" },
  secret_undecryptable: { status: 500, meaning: "a stored secret cannot be decrypted" },
  skill_conflict: {
    status: 409,
    meaning: "two skills have the same name, or a skill of that name is installed already",
  },
  skill_fetch_failed: {
    status: 502,
    meaning: "a skill source (git repository, npm package, path) cannot be fetched",
  },
  skill_invalid: {
    status: 400,
    meaning: "a SKILL.md or skill folder is not valid (the message names the file and key)",
  },
  skill_not_found: { status: 404, meaning: "no skill has this name" },
  store_closed: { status: 503, meaning: "the store is closed (the gateway is shutting down)" },
  store_invalid_cursor: { status: 400, meaning: "a stream cursor (Last-Event-ID) is not valid" },
  store_invalid_duration: { status: 400, meaning: "a store call got an invalid duration" },
  store_invalid_id: { status: 400, meaning: "a queue item got an empty id" },
  store_invalid_increment: { status: 400, meaning: "a counter was incremented by a non-integer" },
  store_invalid_limit: { status: 400, meaning: "a store call got an invalid limit" },
  store_not_integer: { status: 400, meaning: "a counter key does not hold an integer" },
  store_open_failed: { status: 500, meaning: "the SQLite store cannot be opened" },
  store_schema_too_new: {
    status: 500,
    meaning: "the SQLite store was written by a newer gateway",
  },
  store_unreachable: { status: 503, meaning: "Redis cannot be reached" },
  store_unsupported: { status: 503, meaning: "this Redis lacks something the store needs" },
  telegram_not_configured: { status: 404, meaning: "Telegram is not set up on this gateway" },
  test_mode_invalid: { status: 500, meaning: "the proxy's test mode is configured wrongly" },
  too_many_files: { status: 413, meaning: "a message carries more files than the limit" },
  too_many_streams: {
    status: 429,
    meaning: "too many open event streams for this token or address (`Retry-After`)",
  },
  turn_not_running: {
    status: 409,
    meaning: "a stop named a conversation or message with no running turn (nothing was stopped)",
  },
  turn_stopped: {
    status: 409,
    meaning: "a person stopped the turn (a turn's `error` event), or dropped the queued message",
  },
  unauthorized: { status: 401, meaning: "missing, invalid, expired or revoked token or session" },
  unsandboxed_refused: {
    status: 400,
    meaning: 'sandbox.driver = "host" without sandbox.allow_unsandboxed = true',
  },
  volume_meta_invalid: { status: 500, meaning: "a sandbox volume's metadata is unreadable" },
} as const satisfies Record<string, ErrorCodeInfo>;

export type LobuErrorCode = keyof typeof ERROR_CODES;

/** The codes as a zod enum, for what carries one across a process boundary (an `error` event). */
export const LobuErrorCode = z.enum(
  Object.keys(ERROR_CODES) as [LobuErrorCode, ...LobuErrorCode[]],
);
