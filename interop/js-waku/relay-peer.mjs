// A js-waku relay node on 127.0.0.1 for demls-transport's interop test.
//
// Usage: node relay-peer.mjs --cluster <id> --shard <n> --content-topic <topic>
//
// Talks JSON lines. On stdout (one object per line, nothing else):
//   {"event":"ready","peerId":"...","addrs":["/ip4/127.0.0.1/tcp/…/p2p/…"],"pubsubTopic":"…"}
//   {"event":"connected","peerId":"…"}                 a libp2p connection opened
//   {"event":"subscribed","peerId":"…"}                the peer subscribed to our pubsub topic
//   {"event":"message","msgId":hex,"hash":hex,"contentTopic":…,"payload":hex,"meta":hex|null,
//    "timestamp":"<ns>","version":n|null,"from":"…"}   a gossipsub message on our pubsub topic
//   {"event":"decoded","contentTopic":…,"payload":hex}  js-waku's relay decoder accepted one
//   {"event":"published","msgId":hex,"hash":hex,"recipients":n,"timestamp":"<ns>"}
//   {"event":"flooded","sent":n,"failed":n,"elapsedMs":n,"hashes":[hex,…]}
//   {"event":"error","message":"…"}
// On stdin:
//   {"cmd":"publish","payload":hex,"meta":hex|null}
//   {"cmd":"flood","count":n,"durationMs":n,"size":n}   publish `count` messages of `size`
//        payload bytes, evenly spread over `durationMs` (as fast as possible when behind),
//        then report the hashes of those sent
//   {"cmd":"stop"}
//
// msgId is computed by js-waku's own gossipsub message-id function; hash by
// @waku/message-hash. Neither is reimplemented here.

import { emit, hex, networkArgs, serveCommands, unhex } from "./common.mjs";

const { createRelayNode } = await import("@waku/sdk/relay");
const { createEncoder, createDecoder } = await import("@waku/core");
const { proto_message } = await import("@waku/proto");
const { messageHash } = await import("@waku/message-hash");
const { tcp } = await import("@libp2p/tcp");
const { yamux } = await import("@chainsafe/libp2p-yamux");

const { clusterId, shard, contentTopic, shardInfo, pubsubTopic } = networkArgs();

const waku = await createRelayNode({
  networkConfig: { clusterId, shards: [shard] },
  libp2p: {
    addresses: { listen: ["/ip4/127.0.0.1/tcp/0"] },
    transports: [tcp()],
    streamMuxers: [yamux()]
  }
});
await waku.start();

const gossipSub = waku.relay.gossipSub;

waku.libp2p.addEventListener("peer:connect", (event) => {
  emit({ event: "connected", peerId: event.detail.toString() });
});

gossipSub.addEventListener("subscription-change", (event) => {
  const { peerId, subscriptions } = event.detail;
  if (subscriptions.some((s) => s.topic === pubsubTopic && s.subscribe)) {
    emit({ event: "subscribed", peerId: peerId.toString() });
  }
});

gossipSub.addEventListener("gossipsub:message", (event) => {
  const { msg, msgId, propagationSource } = event.detail;
  if (msg.topic !== pubsubTopic) {
    return;
  }
  try {
    const proto = proto_message.WakuMessage.decode(msg.data);
    emit({
      event: "message",
      msgId: Buffer.from(msgId, "base64").toString("hex"),
      hash: hex(messageHash(pubsubTopic, proto)),
      contentTopic: proto.contentTopic,
      payload: hex(proto.payload),
      meta: proto.meta ? hex(proto.meta) : null,
      timestamp: proto.timestamp ?? null,
      version: proto.version ?? null,
      from: propagationSource.toString()
    });
  } catch (e) {
    emit({ event: "error", message: `undecodable message: ${e}` });
  }
});

const decoder = createDecoder(contentTopic, shardInfo);
waku.relay.subscribeWithUnsubscribe([decoder], (message) => {
  emit({
    event: "decoded",
    contentTopic: message.contentTopic,
    payload: hex(message.payload)
  });
});

async function publish(payloadHex, metaHex) {
  const meta = metaHex ? unhex(metaHex) : undefined;
  const encoder = createEncoder({
    contentTopic,
    pubsubTopicShardInfo: shardInfo,
    metaSetter: meta ? () => meta : undefined
  });
  // A fixed timestamp makes the encoding deterministic, so the id and hash computed from
  // `toWire` below are those of the bytes `send` puts on the wire.
  const message = { payload: unhex(payloadHex), timestamp: new Date() };
  const wire = await encoder.toWire(message);
  const proto = proto_message.WakuMessage.decode(wire);
  const msgId = await gossipSub.msgIdFn({ type: "unsigned", topic: pubsubTopic, data: wire });
  const result = await waku.relay.send(encoder, message);
  if (result.failures.length > 0) {
    emit({ event: "error", message: `send failed: ${JSON.stringify(result.failures)}` });
    return;
  }
  emit({
    event: "published",
    msgId: hex(msgId),
    hash: hex(messageHash(pubsubTopic, proto)),
    recipients: result.successes.length,
    timestamp: proto.timestamp
  });
}

async function flood(count, durationMs, size) {
  const encoder = createEncoder({ contentTopic, pubsubTopicShardInfo: shardInfo });
  const start = Date.now();
  const hashes = [];
  let failed = 0;
  for (let i = 0; i < count; i++) {
    const due = start + (i * durationMs) / count;
    const wait = due - Date.now();
    if (wait > 0) {
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const label = new TextEncoder().encode(`flood ${i} `);
    const payload = new Uint8Array(Math.max(size, label.length));
    payload.set(label);
    const message = { payload, timestamp: new Date() };
    const proto = proto_message.WakuMessage.decode(await encoder.toWire(message));
    const result = await waku.relay.send(encoder, message);
    if (result.failures.length > 0 || result.successes.length === 0) {
      failed++;
    } else {
      hashes.push(hex(messageHash(pubsubTopic, proto)));
    }
  }
  emit({ event: "flooded", sent: hashes.length, failed, elapsedMs: Date.now() - start, hashes });
}

async function stop() {
  await waku.stop();
  process.exit(0);
}

serveCommands(
  {
    publish: (c) => publish(c.payload, c.meta),
    flood: (c) => flood(c.count, c.durationMs, c.size)
  },
  stop
);

emit({
  event: "ready",
  peerId: waku.libp2p.peerId.toString(),
  addrs: waku.libp2p.getMultiaddrs().map((a) => a.toString()),
  pubsubTopic
});
