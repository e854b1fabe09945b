import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { CliError } from "../client.ts";
import { renderHelmChart, toYamlDocuments, yamlText } from "../deploy/helm.ts";
import {
  DEFAULTS,
  type RenderOptions,
  readDeployConfig,
  renderCompose,
  renderKubernetes,
  warningsFor,
} from "../deploy/render.ts";
import type { Runner } from "../program.ts";

const TARGETS = ["compose", "kubernetes", "helm"] as const;
type Target = (typeof TARGETS)[number];

interface RenderFlags {
  target: string;
  config?: string;
  out?: string;
  image?: string;
  redisImage?: string;
  replicas?: string;
  namespace?: string;
  redisStorage?: string;
  buildContext?: string;
}

function header(target: Target, file: string): string {
  return `# Rendered by \`lobu deploy render --target ${target}\` from ${file}: change that file and render again.\n`;
}

/** What `lobu deploy render` writes, by file (or "-" for stdout). */
export function renderDeployment(flags: RenderFlags): {
  files: Record<string, string>;
  warnings: string[];
} {
  const target = flags.target as Target;
  if (!TARGETS.includes(target))
    throw new CliError(`--target must be one of ${TARGETS.join(", ")} (got "${flags.target}")`);
  const configPath = resolve(flags.config ?? "lobu.toml");
  if (!existsSync(configPath))
    throw new CliError(`${configPath} does not exist (run \`lobu init\`, or pass --config)`);
  const d = readDeployConfig(readFileSync(configPath, "utf8"), flags.config ?? "lobu.toml");
  const replicas = flags.replicas === undefined ? DEFAULTS.replicas : Number(flags.replicas);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 100)
    throw new CliError(`--replicas must be a whole number from 1 to 100 (got "${flags.replicas}")`);
  const namespace = flags.namespace ?? DEFAULTS.namespace;
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace))
    throw new CliError(`--namespace "${namespace}" is not a Kubernetes namespace name`);
  const o: RenderOptions = {
    image: flags.image ?? DEFAULTS.image,
    redisImage: flags.redisImage ?? DEFAULTS.redisImage,
    replicas,
    namespace,
    redisStorage: flags.redisStorage ?? DEFAULTS.redisStorage,
    ...(flags.buildContext ? { buildContext: flags.buildContext } : {}),
  };
  const file = "lobu.toml";
  switch (target) {
    case "compose":
      return {
        files: { "-": header(target, file) + yamlText(renderCompose(d, o)) },
        warnings: warningsFor(d, "compose"),
      };
    case "kubernetes":
      return {
        files: { "-": header(target, file) + toYamlDocuments(renderKubernetes(d, o)) },
        warnings: warningsFor(d, "kubernetes"),
      };
    case "helm": {
      if (!flags.out) throw new CliError("--target helm writes a chart folder: pass --out <dir>");
      return { files: renderHelmChart(d, o).files, warnings: warningsFor(d, "kubernetes") };
    }
  }
}

export function deployCommands(program: Command, run: Runner): void {
  const deploy = program.command("deploy").description("deployment manifests for this lobu.toml");
  deploy
    .command("render")
    .description(
      "render a Compose file, Kubernetes manifests or a Helm chart (gateway + Redis) from lobu.toml",
    )
    .requiredOption("--target <target>", "compose | kubernetes | helm")
    .option("-c, --config <file>", "config file (default ./lobu.toml)")
    .option("-o, --out <path>", "file to write (default stdout); for helm, the chart's folder")
    .option("--image <ref>", `gateway image (default ${DEFAULTS.image})`)
    .option("--redis-image <ref>", `Redis image (default ${DEFAULTS.redisImage})`)
    .option("--replicas <n>", `kubernetes/helm: gateway replicas (default ${DEFAULTS.replicas})`)
    .option("--namespace <ns>", `kubernetes: namespace (default ${DEFAULTS.namespace})`)
    .option("--redis-storage <size>", `Redis volume size (default ${DEFAULTS.redisStorage})`)
    .option(
      "--build-context <dir>",
      "compose: build the gateway image from this Lobu checkout (relative to the compose file)",
    )
    .addHelpText(
      "after",
      `
lobu.toml must use [store] driver = "redis": every gateway shares one Redis
(the manifests run it and set REDIS_URL). lobu.toml is shipped as it is (a bind
mount, a ConfigMap, the chart's \`config\` value); secrets never are: put
LOBU_MASTER_KEY, LOBU_ADMIN_TOKEN and provider keys in .env (compose) or the
Secret "lobu-secrets" (kubernetes). See docs/deploy/.`,
    )
    .action((o: RenderFlags) =>
      run(() => {
        const { files, warnings } = renderDeployment(o);
        for (const w of warnings) process.stderr.write(`! ${w}\n`);
        for (const [name, text] of Object.entries(files)) {
          if (name === "-") {
            if (o.out) writeFileSync(o.out, text);
            else process.stdout.write(text);
            continue;
          }
          const path = join(o.out!, name);
          mkdirSync(dirname(path), { recursive: true });
          writeFileSync(path, text);
        }
        if (o.out) process.stderr.write(`wrote ${o.out}\n`);
        return 0;
      })(),
    );
}
