// A VS Code extension's source as usually written, bundled by esbuild into CommonJS for Node
// (`--platform=node --format=cjs`), the package inlined into the bundle.
import { Replica, isTetherError } from 'tether-sync';
import { connectReplica, serveReplica } from 'tether-sync/channel';
import { serveWebview } from 'tether-sync/vscode';
import { run } from './node-run.mjs';

run({ Replica, isTetherError, channel: { connectReplica, serveReplica, serveWebview } });
