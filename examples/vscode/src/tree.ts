// The catalog tree view: each expansion asks the replica for one page of the node's children
// (src/catalog.ts), so the tree costs what the user opens, not the size of the catalog.
import * as vscode from 'vscode';
import type { Conflict, Scope, TetherRecord } from 'tether-sync';
import { PAGE, childCollection, children, label } from './catalog';
import { report } from './report';

export type Node =
  | { type: 'record'; key: string; record: TetherRecord }
  | { type: 'more'; key: string; parent: Node | undefined; shown: number; total: number }
  | { type: 'conflicts'; conflicts: Conflict[] }
  | { type: 'conflict'; conflict: Conflict }
  | { type: 'message'; text: string };

const ICONS: Record<string, string> = {
  repositories: 'repo',
  files: 'file-code',
  objects: 'table',
  columns: 'symbol-field',
};

const ROOT = '';

export class CatalogTree implements vscode.TreeDataProvider<Node> {
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private scope: Scope | undefined;
  private conflicts: Conflict[] = [];
  /** Children shown per parent key (a multiple of PAGE); PAGE when absent. */
  private readonly shown = new Map<string, number>();
  /**
   * The node objects handed to VS Code, by key: the same object for the same record, so that
   * a "more…" click can refresh one parent (VS Code knows its elements by identity).
   */
  private readonly nodes = new Map<string, Node & { type: 'record' }>();

  constructor(private readonly log: vscode.LogOutputChannel) {}

  /** Shows `scope` (none: no organization chosen) and re-reads every expanded node. */
  show(scope: Scope | undefined, conflicts: Conflict[]): void {
    if (scope?.id !== this.scope?.id) {
      this.shown.clear();
      this.nodes.clear();
    }
    this.scope = scope;
    this.conflicts = conflicts;
    this.changed.fire(undefined);
  }

  /** Shows the next page of the children of the "more…" node's parent. */
  more(node: Node): void {
    if (node.type !== 'more') return;
    const key = node.parent?.type === 'record' ? node.parent.key : ROOT;
    this.shown.set(key, node.shown + PAGE);
    this.changed.fire(node.parent);
  }

  async getChildren(parent?: Node): Promise<Node[]> {
    const scope = this.scope;
    if (!parent) {
      if (!scope) return [{ type: 'message', text: 'Choose an organization ("Tether: Switch organization")' }];
      const top: Node[] = [{ type: 'conflicts', conflicts: this.conflicts }];
      const roots = await this.page(scope, undefined);
      if (roots.length === 0) top.push({ type: 'message', text: `Nothing synced for ${scope.id} yet` });
      return [...top, ...roots];
    }
    if (parent.type === 'record' && scope) return this.page(scope, parent);
    if (parent.type === 'conflicts') return parent.conflicts.map((conflict): Node => ({ type: 'conflict', conflict }));
    return [];
  }

  // One page of the children of `parent` (the repositories at the root), and a "more…" node
  // when there are more.
  private async page(scope: Scope, parent: (Node & { type: 'record' }) | undefined): Promise<Node[]> {
    const key = parent?.key ?? ROOT;
    const limit = this.shown.get(key) ?? PAGE;
    const started = performance.now();
    let result;
    try {
      result = await children(scope, parent?.record ?? null, limit);
    } catch (e) {
      this.log.error(`${scope.id}: reading the replica failed: ${String(e)}`);
      return [{ type: 'message', text: `Reading the replica failed: ${String(e)}` }];
    }
    if (!result) return [];
    report('children', {
      collection: result.collection,
      parent: parent?.record.id ?? null,
      n: result.records.length,
      ms: performance.now() - started,
    });
    const nodes: Node[] = result.records.map((record) => this.node(record));
    if (result.total !== null) {
      nodes.push({ type: 'more', key: `${key}#more`, parent, shown: result.records.length, total: result.total });
    }
    return nodes;
  }

  private node(record: TetherRecord): Node & { type: 'record' } {
    const key = `${record.collection}/${record.id}`;
    let node = this.nodes.get(key);
    if (node) node.record = record;
    else this.nodes.set(key, (node = { type: 'record', key, record }));
    return node;
  }

  getTreeItem(n: Node): vscode.TreeItem {
    const None = vscode.TreeItemCollapsibleState.None;
    const Collapsed = vscode.TreeItemCollapsibleState.Collapsed;
    switch (n.type) {
      case 'message':
        return new vscode.TreeItem(n.text, None);
      case 'more': {
        const item = new vscode.TreeItem(`more… (${n.shown} of ${n.total})`, None);
        item.id = n.key;
        item.iconPath = new vscode.ThemeIcon('ellipsis');
        item.command = { command: 'tether.more', title: 'Show more', arguments: [n] };
        return item;
      }
      case 'conflicts': {
        const item = new vscode.TreeItem(`Conflicts (${n.conflicts.length})`, n.conflicts.length ? Collapsed : None);
        item.iconPath = new vscode.ThemeIcon('warning');
        item.command = { command: 'tether.showConflicts', title: 'Show conflicts' };
        return item;
      }
      case 'conflict': {
        const c = n.conflict;
        const item = new vscode.TreeItem(`${c.collection}/${c.recordId}`, None);
        item.description = `local ${c.localOp} lost to v${c.cloudVersion}`;
        return item;
      }
      case 'record': {
        const { record } = n;
        const text = label(record);
        // Whether a node has children is known when it is expanded: one that has none loses
        // its twistie then, rather than every node costing a count when its parent opens.
        const item = new vscode.TreeItem(text, childCollection(record.collection) ? Collapsed : None);
        item.id = n.key;
        item.description = record.id;
        item.tooltip = tooltip(record);
        item.iconPath = new vscode.ThemeIcon(ICONS[record.collection] ?? 'circle-outline');
        item.contextValue = record.collection;
        // What screen readers (and the host test) find: collection, id, then the label.
        item.accessibilityInformation = { label: `${record.collection} ${record.id} ${text}` };
        return item;
      }
    }
  }
}

function tooltip(record: TetherRecord): vscode.MarkdownString {
  const md = new vscode.MarkdownString(`**${record.collection}/${record.id}** (v${record.version})\n\n`);
  md.appendCodeblock(JSON.stringify(record.data, null, 2), 'json');
  return md;
}
