// Example extension: a data catalog (the demo dataset `tether seed` writes) kept offline in a
// Tether replica file under the extension's global storage, one Tether scope per organization.
// Sign-in keeps the token in SecretStorage; a background sync runs every 15 minutes (with the
// package's backoff after network failures); the tree view reads the replica only, one indexed
// query per expanded node, so it works offline and at any size of the catalog.
import * as vscode from 'vscode';
import { Replica, isTetherError } from 'tether-sync';
import type { BackgroundSync, Conflict, HttpRemote, Scope, SyncReport } from 'tether-sync';
import { INDEXES, label, objectsByName } from './catalog';
import { WatchedReplica, showObject } from './panel';
import { memory, report, sampleMemory } from './report';
import { CatalogTree } from './tree';
import type { Node } from './tree';

const TOKEN_KEY = 'tether.token';
const SYNC_EVERY_MS = 15 * 60 * 1000;

let session: Session | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel('Tether', { log: true });
  await vscode.workspace.fs.createDirectory(context.globalStorageUri);
  const file = vscode.Uri.joinPath(context.globalStorageUri, 'replica.db').fsPath;
  // One SQLite file for every organization: switching keeps the others' records for offline use.
  const replica = await Replica.open(file, { indexes: INDEXES });
  log.info(`replica ${file} (${replica.kind})`);
  report('activated', memory());
  session = new Session(context, replica, log);
  context.subscriptions.push(log, session);
  await session.start();
}

export async function deactivate(): Promise<void> {
  await session?.close();
  session = undefined;
}

type SyncState =
  | { kind: 'signed-out' }
  | { kind: 'no-organization' }
  | { kind: 'syncing'; done: number }
  | { kind: 'synced'; count: number }
  | { kind: 'offline'; count: number }
  | { kind: 'error'; message: string };

class Session implements vscode.Disposable {
  private readonly status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 10);
  private readonly tree: CatalogTree;
  private background: BackgroundSync | undefined;
  /** The replica as the object panels' channels see it (counting their watchers). */
  private readonly watched: WatchedReplica;
  private disposables: vscode.Disposable[] = [];

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly replica: Replica,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.tree = new CatalogTree(log);
    this.watched = new WatchedReplica(replica);
    this.status.name = 'Tether sync';
    this.status.command = 'tether.syncNow';
    this.disposables.push(
      this.status,
      vscode.window.registerTreeDataProvider('tether.catalog', this.tree),
      vscode.commands.registerCommand('tether.signIn', () => this.signIn()),
      vscode.commands.registerCommand('tether.signOut', () => this.signOut()),
      vscode.commands.registerCommand('tether.syncNow', () => this.syncNow()),
      vscode.commands.registerCommand('tether.switchOrganization', () => this.switchOrganization()),
      vscode.commands.registerCommand('tether.showConflicts', () => this.showConflicts()),
      vscode.commands.registerCommand('tether.more', (node) => this.tree.more(node)),
      vscode.commands.registerCommand('tether.showObject', (target?: Node | string) => this.showObject(target)),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('tether.organization') || e.affectsConfiguration('tether.serverUrl')) {
          void this.start();
        }
      }),
      context.secrets.onDidChange((e) => {
        if (e.key === TOKEN_KEY) void this.start();
      }),
    );
    this.status.show();
  }

  private get organization(): string {
    return vscode.workspace.getConfiguration('tether').get<string>('organization', '').trim();
  }

  private scope(): Scope | undefined {
    const org = this.organization;
    return org ? this.replica.scope(org) : undefined;
  }

  private remote(): HttpRemote {
    const url = vscode.workspace.getConfiguration('tether').get<string>('serverUrl', '');
    return { url, token: async () => (await this.token()) ?? '' };
  }

  // SecretStorage first; TETHER_TOKEN (the CLI's variable) for headless runs, e.g. the CI test.
  private async token(): Promise<string | undefined> {
    return (await this.context.secrets.get(TOKEN_KEY)) || process.env.TETHER_TOKEN || undefined;
  }

  /** (Re)starts for the configured organization: shows what the replica holds, then syncs. */
  async start(): Promise<void> {
    await this.background?.stop();
    this.background = undefined;
    const scope = this.scope();
    if (!scope) {
      this.show({ kind: 'no-organization' });
      this.tree.show(undefined, []);
      return;
    }
    await this.refreshTree(scope);
    if (!(await this.token())) {
      this.show({ kind: 'signed-out' });
      return;
    }
    this.show({ kind: 'synced', count: (await scope.status()).count });
    let progress: { report: (done: number) => void; end: () => void } | undefined;
    this.background = scope.startBackgroundSync({
      remote: this.remote(),
      intervalMs: SYNC_EVERY_MS,
      onProgress: (p) => {
        sampleMemory();
        progress ??= this.windowProgress(scope.id);
        progress.report(p.done);
        this.show({ kind: 'syncing', done: p.done });
      },
      onSync: (report) => {
        progress?.end();
        progress = undefined;
        this.log.info(`${scope.id}: synced, ${report.snapshot.count} records`);
        this.synced(report);
        this.show({ kind: 'synced', count: report.snapshot.count });
        void this.refreshTree(scope);
      },
      onError: (error) => {
        progress?.end();
        progress = undefined;
        void this.failed(scope, error);
      },
    });
  }

  private async syncNow(): Promise<void> {
    const scope = this.scope();
    if (!scope) return void vscode.commands.executeCommand('tether.switchOrganization');
    if (!(await this.token())) return void vscode.commands.executeCommand('tether.signIn');
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Tether: syncing ${scope.id}`, cancellable: true },
      async (progress, cancel) => {
        const abort = new AbortController();
        cancel.onCancellationRequested(() => abort.abort());
        let last = 0;
        try {
          const report = await scope.sync({
            remote: this.remote(),
            trigger: 'manual',
            signal: abort.signal,
            onProgress: (p) => {
              this.show({ kind: 'syncing', done: p.done });
              const increment = p.percent === null ? undefined : p.percent - last;
              last = p.percent ?? last;
              progress.report({ message: `${p.phase}: ${p.done} records`, increment });
            },
          });
          this.show({ kind: 'synced', count: report.snapshot.count });
          this.synced(report);
          await this.refreshTree(scope);
        } catch (e) {
          await this.failed(scope, e);
        }
      },
    );
  }

  private windowProgress(org: string): { report: (done: number) => void; end: () => void } {
    let end!: () => void;
    let report: (done: number) => void = () => {};
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: `Tether ${org}` },
      (progress) =>
        new Promise<void>((resolve) => {
          end = resolve;
          report = (done) => progress.report({ message: `${done} records` });
        }),
    );
    return { report: (done) => report(done), end: () => end() };
  }

  private async failed(scope: Scope, error: unknown): Promise<void> {
    this.log.warn(`${scope.id}: sync failed: ${String(error)}`);
    if (isTetherError(error) && error.code === 'Network') {
      this.show({ kind: 'offline', count: (await scope.status()).count });
    } else if (isTetherError(error) && error.code === 'Auth') {
      this.show({ kind: 'error', message: 'the server refused the token; run "Tether: Sign in"' });
    } else if (!(isTetherError(error) && error.code === 'Cancelled')) {
      this.show({ kind: 'error', message: error instanceof Error ? error.message : String(error) });
    }
    await this.refreshTree(scope);
  }

  private show(state: SyncState): void {
    const s = this.status;
    s.backgroundColor = undefined;
    switch (state.kind) {
      case 'signed-out':
        s.text = '$(account) Tether: sign in';
        s.command = 'tether.signIn';
        s.tooltip = 'No token: run "Tether: Sign in"';
        return;
      case 'no-organization':
        s.text = '$(organization) Tether: choose an organization';
        s.command = 'tether.switchOrganization';
        s.tooltip = undefined;
        return;
      case 'syncing':
        s.text = `$(sync~spin) Tether: syncing (${state.done})`;
        break;
      case 'synced':
        s.text = `$(check) Tether: synced ${state.count} records`;
        break;
      case 'offline':
        s.text = `$(cloud-offline) Tether: offline (${state.count} records)`;
        break;
      case 'error':
        s.text = '$(error) Tether: error';
        s.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        s.tooltip = state.message;
        s.command = 'tether.syncNow';
        return;
    }
    s.command = 'tether.syncNow';
    s.tooltip = `${this.organization}: click to sync now`;
  }

  private synced({ run, snapshot }: SyncReport): void {
    const ms = run.finishedAt === null ? null : run.finishedAt - run.startedAt;
    report('synced', { scope: run.scope, kind: run.kind, count: snapshot.count, ms, ...memory() });
  }

  private async refreshTree(scope: Scope): Promise<void> {
    try {
      this.tree.show(scope, await scope.conflicts());
    } catch (e) {
      this.log.error(`${scope.id}: reading the replica failed: ${String(e)}`);
    }
  }

  private async signIn(): Promise<void> {
    const token = await vscode.window.showInputBox({
      title: 'Tether: Sign in',
      prompt: `Token for ${this.remote().url}`,
      password: true,
      ignoreFocusOut: true,
    });
    if (token) await this.context.secrets.store(TOKEN_KEY, token); // onDidChange restarts
  }

  private async signOut(): Promise<void> {
    await this.context.secrets.delete(TOKEN_KEY);
  }

  private async switchOrganization(): Promise<void> {
    const config = vscode.workspace.getConfiguration('tether');
    const known = new Set([...config.get<string[]>('organizations', []), ...(await this.replica.scopes())]);
    const items: vscode.QuickPickItem[] = [...known].sort().map((org) => ({
      label: org,
      description: org === this.organization ? 'current' : undefined,
    }));
    items.push({ label: '$(add) Another organization…', alwaysShow: true });
    const picked = await vscode.window.showQuickPick(items, { title: 'Tether: Switch organization' });
    if (!picked) return;
    let org: string | undefined = picked.label;
    if (!known.has(org)) org = await vscode.window.showInputBox({ title: 'Organization id' });
    if (org) await config.update('organization', org.trim(), vscode.ConfigurationTarget.Global);
  }

  /**
   * Opens the panel of an object: the tree's node, an object id, or (from the command palette)
   * one picked by name, searched as the user types.
   */
  private async showObject(target?: Node | string): Promise<void> {
    const scope = this.scope();
    if (!scope) return void vscode.commands.executeCommand('tether.switchOrganization');
    let id: string | undefined;
    let title: string | undefined;
    if (typeof target === 'string') id = target;
    else if (target?.type === 'record' && target.record.collection === 'objects') {
      id = target.record.id;
      title = label(target.record);
    } else {
      const picked = await this.pickObject(scope);
      id = picked?.description;
      title = picked?.label;
    }
    if (!id) return;
    showObject(this.context, this.watched, scope, id, title ?? id);
  }

  // A quick pick of objects by name prefix (the `name` index), or by id when the text is one.
  private async pickObject(scope: Scope): Promise<vscode.QuickPickItem | undefined> {
    const pick = vscode.window.createQuickPick();
    pick.title = 'Tether: Show Object';
    pick.placeholder = 'Object name (prefix) or id';
    pick.matchOnDescription = true;
    let asked = 0;
    const search = async (text: string) => {
      const mine = ++asked;
      pick.busy = true;
      try {
        const prefix = text.trim();
        const byId = /^obj_/.test(prefix) ? await scope.get('objects', prefix) : null;
        const page = byId ? { records: [byId] } : await scope.query('objects', objectsByName(prefix, 50));
        // A slower answer to an earlier text must not replace the items of a later one.
        if (mine === asked) pick.items = page.records.map((r) => ({ label: label(r), description: r.id }));
      } finally {
        if (mine === asked) pick.busy = false;
      }
    };
    pick.onDidChangeValue((text) => void search(text).catch((e) => this.log.error(String(e))));
    void search('');
    pick.show();
    return new Promise((resolve) => {
      pick.onDidAccept(() => {
        resolve(pick.selectedItems[0]);
        pick.hide();
      });
      pick.onDidHide(() => {
        resolve(undefined);
        pick.dispose();
      });
    });
  }

  private async showConflicts(): Promise<void> {
    const scope = this.scope();
    const conflicts = scope ? await scope.conflicts() : [];
    if (conflicts.length === 0) return void vscode.window.showInformationMessage('Tether: no conflicts');
    await vscode.window.showQuickPick(conflicts.map(conflictItem), { title: 'Tether: conflicts (cloud won)' });
  }

  async close(): Promise<void> {
    await this.background?.stop();
    this.background = undefined;
    await this.replica.close();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    this.disposables = [];
  }
}

function conflictItem(c: Conflict): vscode.QuickPickItem {
  return {
    label: `${c.collection}/${c.recordId}`,
    description: `local ${c.localOp} lost to cloud version ${c.cloudVersion}`,
    detail: c.reason,
  };
}
