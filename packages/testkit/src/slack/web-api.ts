/**
 * Slack Web API methods. Each handler reads Slack-style arguments (strings from
 * forms, JSON values from JSON bodies), mutates the world model and returns the
 * body Slack would, or throws SlackApiError for {ok:false,error}.
 */
import type { MethodSpec } from "./api-support.ts";
import { CHAT_METHODS } from "./methods-chat.ts";
import { USERGROUP_METHODS } from "./methods-usergroups.ts";
import { WORKSPACE_METHODS } from "./methods-workspace.ts";

export type {
  ApiCall,
  MethodSpec,
  OAuthGrant,
  ResponseUrlTarget,
  SlackBackend,
} from "./api-support.ts";
export { Args, SlackApiError } from "./api-support.ts";

export const METHODS: Record<string, MethodSpec> = {
  ...WORKSPACE_METHODS,
  ...CHAT_METHODS,
  ...USERGROUP_METHODS,
};
