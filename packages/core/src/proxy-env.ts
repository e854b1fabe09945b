/**
 * Environment that points every common HTTP client inside a sandbox at the egress
 * proxy and makes it trust the Lobu CA (for hosts where secrets are swapped).
 * NO_PROXY is empty on purpose: the sandbox has no other way out, and anything a
 * client tried to reach directly would just fail.
 */
export function workerProxyEnv(opts: {
  /** `http://127.0.0.1:<port>` of the in-sandbox forwarder. */
  proxyUrl: string;
  /** Path, as seen inside the sandbox, of the bundle written by `caBundle`. */
  caBundlePath: string;
}): Record<string, string> {
  const { proxyUrl, caBundlePath } = opts;
  return {
    HTTP_PROXY: proxyUrl,
    HTTPS_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    https_proxy: proxyUrl,
    ALL_PROXY: proxyUrl,
    all_proxy: proxyUrl,
    NO_PROXY: "",
    no_proxy: "",
    // Node's fetch/http honour the variables above only with this (Node >= 24).
    NODE_USE_ENV_PROXY: "1",
    // Node adds this to its bundled store; everything else replaces its store.
    NODE_EXTRA_CA_CERTS: caBundlePath,
    SSL_CERT_FILE: caBundlePath,
    CURL_CA_BUNDLE: caBundlePath,
    REQUESTS_CA_BUNDLE: caBundlePath,
    GIT_SSL_CAINFO: caBundlePath,
    PIP_CERT: caBundlePath,
    AWS_CA_BUNDLE: caBundlePath,
    DENO_CERT: caBundlePath,
  };
}
