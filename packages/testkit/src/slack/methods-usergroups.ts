/** usergroups.list and usergroups.users.list (scope usergroups:read). */
import {
  installOf,
  type MethodSpec,
  SlackApiError,
  type SlackBackend,
  TIER_2,
} from "./api-support.ts";
import type { SlackInstallation, SlackUserGroup } from "./types.ts";

function readable(call: Parameters<MethodSpec["handler"]>[0]): SlackInstallation {
  const install = installOf(call);
  if (!install.scopes.includes("usergroups:read"))
    throw new SlackApiError("missing_scope", {
      needed: "usergroups:read",
      provided: install.scopes.join(","),
    });
  return install;
}

function groupJson(g: SlackUserGroup): Record<string, unknown> {
  return {
    id: g.id,
    team_id: g.teamId,
    is_usergroup: true,
    name: g.handle,
    handle: g.handle,
    description: "",
    is_external: false,
    date_create: 1_700_000_000,
    date_update: 1_700_000_000,
    date_delete: 0,
    auto_type: null,
    user_count: g.users.length,
  };
}

function groupOf(emu: SlackBackend, install: SlackInstallation, id: string | undefined) {
  const group = id ? emu.world.userGroups.get(id) : undefined;
  if (!group || group.teamId !== install.teamId) throw new SlackApiError("no_such_subteam");
  return group;
}

export const USERGROUP_METHODS: Record<string, MethodSpec> = {
  "usergroups.list": {
    auth: "bot",
    rate: TIER_2,
    handler: (call, emu) => {
      const install = readable(call);
      const groups = [...emu.world.userGroups.values()].filter((g) => g.teamId === install.teamId);
      return {
        ok: true,
        usergroups: groups.map((g) => ({
          ...groupJson(g),
          ...(call.args.bool("include_users") ? { users: g.users } : {}),
        })),
      };
    },
  },

  "usergroups.users.list": {
    auth: "bot",
    rate: TIER_2,
    handler: (call, emu) => {
      const group = groupOf(emu, readable(call), call.args.str("usergroup"));
      return { ok: true, users: [...group.users] };
    },
  },
};
