// What the interop scripts share: the Node 20 polyfill, JSON-lines output, hex, arguments,
// and the stdin command loop. Import it before any libp2p or js-waku module.

// Node 20 lacks Promise.withResolvers, which the libp2p stack uses: polyfill it before
// the libraries load (the scripts load them with dynamic imports after this module ran).
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
// Lets @waku/sdk's websocket filter accept non-wss addresses and keeps it quiet.
process.env.NODE_ENV = process.env.NODE_ENV || "test";

import readline from "node:readline";

/** Writes one JSON line on stdout (bigints as decimal strings). */
export function emit(object) {
  process.stdout.write(
    JSON.stringify(object, (_, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n"
  );
}

export const hex = (bytes) => Buffer.from(bytes).toString("hex");
export const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));

/** The value after `--name` on the command line, or `fallback`. */
export function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

/**
 * The network options every script takes: `--cluster` (4242), `--shard` (0) and
 * `--content-topic`, plus the shard info js-waku's encoders and decoders want.
 */
export function networkArgs() {
  const clusterId = Number(arg("cluster", "4242"));
  const shard = Number(arg("shard", "0"));
  return {
    clusterId,
    shard,
    contentTopic: arg("content-topic", "/demls/1/interop/proto"),
    shardInfo: { clusterId, shard },
    pubsubTopic: `/waku/2/rs/${clusterId}/${shard}`
  };
}

/**
 * Reads JSON-line commands from stdin and runs `handlers[command.cmd](command)`; errors are
 * reported as `error` events. `{"cmd":"stop"}`, or stdin closing, calls `stop`.
 */
export function serveCommands(handlers, stop) {
  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    let command;
    try {
      command = JSON.parse(line);
    } catch {
      emit({ event: "error", message: `not JSON: ${line}` });
      return;
    }
    if (command.cmd === "stop") {
      void stop();
      return;
    }
    const handler = handlers[command.cmd];
    if (!handler) {
      emit({ event: "error", message: `unknown command: ${line}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(command))
      .catch((e) => emit({ event: "error", message: `${command.cmd}: ${e}` }));
  });
  // The test closing our stdin (or dying) ends the node.
  lines.on("close", () => void stop());
}
