import { type DriverName, driverPlugin } from "./drivers.ts";

/**
 * Which sandbox driver this gateway runs agents with, for what depends on it
 * before the driver exists (`sandbox.driver = "auto"` is decided when the
 * runtime starts): whether sandboxes can run the programs of Nix packages.
 * Made with the domain and settled once by the runtime, which happens before
 * the gateway handles any request or turn, where it is read.
 */
export class SandboxTier {
  #driver: DriverName | undefined;

  settle(driver: DriverName): void {
    if (this.#driver && this.#driver !== driver)
      throw new Error(`the sandbox tier is already ${this.#driver}`);
    this.#driver = driver;
  }

  get driver(): DriverName | undefined {
    return this.#driver;
  }

  /** Why sandboxes here cannot use Nix packages, if they cannot. */
  noPackages(): string | undefined {
    return this.#driver ? driverPlugin(this.#driver).noPackages : undefined;
  }
}
