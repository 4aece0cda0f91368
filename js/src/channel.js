// Entry `tether-sync/channel`: one replica behind a message channel. The owner of a replica (a
// VS Code extension host, a Worker, a SharedWorker) serves it with `serveReplica(port, replica)`;
// another context (a webview, a page, a tab) uses it with `connectReplica(port)`, which gives the
// Replica / Scope API and loads no WebAssembly. docs/browser.md, "One replica behind a message
// channel", describes the protocol and its decisions.
export { serveReplica } from './channel/serve.js';
export { connectReplica, ConnectedReplica, ConnectedScope } from './channel/connect.js';
export { isTetherError, MARK, VERSION } from './channel/wire.js';
