import { isLobuError } from "@lobu/core";
import { CommanderError } from "commander";
import { CliError } from "./client.ts";
import { buildProgram } from "./program.ts";

let exitCode = 0;
const program = buildProgram((fn) => async () => {
  exitCode = await fn();
});

try {
  await program.parseAsync(process.argv);
  process.exitCode = exitCode;
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else if (err instanceof CliError) {
    process.stderr.write(`lobu: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else if (isLobuError(err)) {
    process.stderr.write(`lobu: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ""}`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`lobu: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
