// A js-waku Store client (the @waku/sdk store API) for demls-transport's Store interop test.
//
// Usage: node store-client.mjs --cluster <id> --shard <n> --content-topic <topic> --peer <multiaddr>
//
// Talks JSON lines. On stdout (one object per line, nothing else):
//   {"event":"ready","peerId":"…"}                         connected to --peer, which serves Store
//   {"event":"pages","pages":[[{"hash":hex,"protoHash":hex,"sdkCursor":hex,"payload":hex,
//     "contentTopic":…,"pubsubTopic":…,"timestamp":"<ns>"},…],…]}
//        `hash`: @waku/message-hash over the message as received (nanosecond timestamp);
//        `sdkCursor`: what the sdk's createCursor gives for the decoded message
//   {"event":"error","message":"…"}
// On stdin:
//   {"cmd":"query","pageSize":n,"forward":bool,"cursor":hex|null}   one queryGenerator run
//   {"cmd":"stop"}

import { arg, emit, hex, networkArgs, serveCommands, unhex } from "./common.mjs";

const { createLightNode, waitForRemotePeer, Protocols } = await import("@waku/sdk");
const { createDecoder } = await import("@waku/core");
const { messageHash } = await import("@waku/message-hash");
const { tcp } = await import("@libp2p/tcp");
const { yamux } = await import("@chainsafe/libp2p-yamux");

const { clusterId, shard, contentTopic, shardInfo } = networkArgs();
const peer = arg("peer", "");

const waku = await createLightNode({
  networkConfig: { clusterId, shards: [shard] },
  defaultBootstrap: false,
  libp2p: {
    addresses: { listen: [] },
    transports: [tcp()],
    streamMuxers: [yamux()]
  }
});
await waku.start();
await waku.dial(peer, [Protocols.Store]);
await waitForRemotePeer(waku, [Protocols.Store], 20000);

const decoder = createDecoder(contentTopic, shardInfo);

async function query(pageSize, forward, cursorHex) {
  const options = { paginationLimit: pageSize, paginationForward: forward };
  if (cursorHex) {
    options.paginationCursor = unhex(cursorHex);
  }
  const pages = [];
  for await (const page of waku.store.queryGenerator([decoder], options)) {
    const messages = (await Promise.all(page)).filter((m) => m !== undefined);
    pages.push(
      messages.map((m) => ({
        hash: hex(messageHash(m.pubsubTopic, m.proto)),
        sdkCursor: hex(waku.store.createCursor(m)),
        payload: hex(m.payload),
        contentTopic: m.contentTopic,
        pubsubTopic: m.pubsubTopic,
        timestamp: m.proto.timestamp ?? null
      }))
    );
  }
  emit({ event: "pages", pages });
}

async function stop() {
  await waku.stop();
  process.exit(0);
}

serveCommands({ query: (c) => query(c.pageSize, c.forward, c.cursor) }, stop);

emit({ event: "ready", peerId: waku.libp2p.peerId.toString(), addrs: [] });
