import { stringify } from "yaml";
import { type DeployConfig, type RenderOptions, renderKubernetes } from "./render.ts";

/**
 * The Helm chart (deploy/helm/lobu): the Kubernetes objects renderKubernetes
 * makes, with values placeholders where the options and lobu.toml go. Made
 * from the same code, so the chart and `--target kubernetes` cannot drift;
 * templates use only `{{ .Values.<path> }}`, `{{ .Release.Namespace }}` and
 * `{{ .Values.config | indent N }}` (tests render them with that subset).
 */

/**
 * YAML text that YAML 1.1 readers (Compose's, Helm's) read the same way:
 * strings such as `yes` and `on` are quoted.
 */
export function yamlText(value: unknown): string {
  return stringify(value, { lineWidth: 0, version: "1.1" });
}

/** One YAML document per object, as `kubectl apply -f` and Helm read them. */
export function toYamlDocuments(objects: Record<string, unknown>[]): string {
  return objects.map(yamlText).join("---\n");
}

/** Marks a value the chart takes from values.yaml (replaced in the YAML text below). */
const mark = (path: string) => `@@${path}@@`;

export interface HelmChart {
  /** File name (under the chart's folder) → content. */
  files: Record<string, string>;
}

export function renderHelmChart(d: DeployConfig, o: RenderOptions): HelmChart {
  const placeholders: RenderOptions = {
    image: mark("image.gateway"),
    redisImage: mark("image.redis"),
    replicas: mark("int:replicas") as unknown as number,
    namespace: mark("namespace"),
    redisStorage: mark("redis.storage"),
  };
  const objects = renderKubernetes({ ...d, toml: mark("block:config") }, placeholders)
    // `helm install --create-namespace` makes the namespace.
    .filter((obj) => obj.kind !== "Namespace");
  const files: Record<string, string> = {
    "Chart.yaml": yamlText({
      apiVersion: "v2",
      name: "lobu",
      description: "Lobu gateway replicas, Redis and RBAC for the kubernetes sandbox driver",
      type: "application",
      version: "0.1.0",
      appVersion: "0.1.0",
    }),
    "values.yaml": `# Rendered by \`lobu deploy render --target helm\`; lobu.toml is \`config\`.\n${yamlText(
      {
        image: { gateway: o.image, redis: o.redisImage },
        replicas: o.replicas,
        redis: { storage: o.redisStorage },
        config: d.toml,
      },
    )}`,
  };
  for (const obj of objects) {
    const { kind, metadata } = obj as { kind: string; metadata: { name: string } };
    files[`templates/${kind.toLowerCase()}-${metadata.name}.yaml`] = templated(yamlText(obj));
  }
  return { files };
}

/** Placeholders → Go template actions. */
function templated(text: string): string {
  return text
    .replace(/^( *)([^\n:]+): "@@block:([\w.]+)@@"$/gm, (_m, indent: string, key: string, path) => {
      return `${indent}${key}: |\n{{ .Values.${path} | indent ${indent.length + 2} }}`;
    })
    .replace(/"@@int:([\w.]+)@@"/g, "{{ .Values.$1 }}")
    .replace(/@@namespace@@/g, "{{ .Release.Namespace }}")
    .replace(/@@([\w.]+)@@/g, "{{ .Values.$1 }}");
}
