import {
  type GatewayProcess,
  type MockLlm,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll } from "vitest";
import { type ConformanceWorld, describeConformance } from "./conformance.ts";
import { discordDriver } from "./drivers/discord.ts";
import { googleChatDriver } from "./drivers/googlechat.ts";
import { slackDriver } from "./drivers/slack.ts";
import { teamsDriver } from "./drivers/teams.ts";
import { telegramDriver } from "./drivers/telegram.ts";
import { whatsappDriver } from "./drivers/whatsapp.ts";
import { ASK_BASH_TOML, FILES_TOML, llmEnv, PROVIDER_KEY } from "./helpers.ts";

/**
 * Every chat platform passes the same adapter contract (conformance.ts), on
 * one real gateway that runs them all. A new platform adds its driver here.
 */
const slack = slackDriver();
const telegram = telegramDriver();
const whatsapp = whatsappDriver();
const discord = discordDriver();
const teams = teamsDriver();
const googlechat = googleChatDriver();
const drivers = [slack, telegram, whatsapp, discord, teams, googlechat];

let llm: MockLlm;
let gw: GatewayProcess;
const world = (): ConformanceWorld => ({ gw, llm });

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  const setups = await Promise.all(drivers.map((d) => d.start()));
  gw = await startGatewayProcess({
    toml: [...ASK_BASH_TOML, ...FILES_TOML, ...setups.flatMap((s) => [...s.toml, ""])].join("\n"),
    env: Object.assign(llmEnv(llm), ...setups.map((s) => s.env)),
  });
  for (const driver of drivers) await driver.connect(gw);
});

afterAll(async () => {
  await gw?.stop();
  for (const driver of drivers) await driver.close();
  await llm?.close();
});

describeConformance(slack, world);
describeConformance(telegram, world);
describeConformance(whatsapp, world);
describeConformance(discord, world);
describeConformance(teams, world);
describeConformance(googlechat, world);
