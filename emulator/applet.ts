// How the card reaches applications that are not security domains: the VM (next issue) and native applets
// (TypeScript applets used by tests and samples) implement the same runtime interface.
import type { CommandApdu, ResponseApdu } from './apdu.ts';

export interface InstallRequest {
  elf: string;
  module: string;
  aid: string;
  privileges: number;
  /** Application-specific parameters (value of tag C9). */
  params: Uint8Array;
}

export interface AppletContext {
  channel: number;
  /** True while the command is the SELECT that selected this application. */
  selecting: boolean;
}

/** Executes applications from load files. Throws IsoError to refuse (the status word reaches the host). */
export interface AppletRuntime {
  /** Does this runtime execute modules of the load file with this AID? */
  handles(elf: string): boolean;
  install(req: InstallRequest): void;
  /** Called when the instance is deleted. */
  uninstall(aid: string): void;
  /** Returns false to refuse selection (the card answers 6999). */
  select(aid: string, ctx: AppletContext): boolean;
  deselect(aid: string, ctx: AppletContext): void;
  process(aid: string, cmd: CommandApdu, ctx: AppletContext): ResponseApdu;
  /** STORE DATA forwarded after INSTALL [for personalization] (GPCS §11.11.2.3); header = its CLA INS P1 P2. */
  processData?(aid: string, data: Uint8Array, header?: Uint8Array): Uint8Array;
  /** Called at power-up/reset so transient state is cleared. */
  reset?(): void;
  /** Called when the last LOAD block arrives (the VM parses, verifies and links); throws IsoError to refuse the load file. */
  loadFile?(elf: string, block: Uint8Array): void;
  /** Called when a load file is deleted. */
  unloadFile?(elf: string): void;
  /** Whether the instance may be selected on several logical channels at once (Java Card MultiSelectable). */
  multiSelectable?(aid: string): boolean;
}

export interface NativeApplet {
  select?(ctx: AppletContext): boolean;
  deselect?(ctx: AppletContext): void;
  process(cmd: CommandApdu, ctx: AppletContext): ResponseApdu;
  processData?(data: Uint8Array): Uint8Array;
  /** Applets that allow selection on several channels at once (Java Card MultiSelectable). */
  multiSelectable?: boolean;
}

export interface NativePackage {
  aid: string;
  version: [number, number];
  modules: { aid: string; create: (req: InstallRequest) => NativeApplet }[];
}

/** A runtime for native (TypeScript) packages: instances live in memory, recreated from the registry at power-up. */
export function nativeRuntime(packages: NativePackage[]): AppletRuntime & {
  restore(entries: { aid: string; elf: string; module: string; privileges: number; params: string }[]): void;
  instance(aid: string): NativeApplet | undefined;
} {
  const instances = new Map<string, NativeApplet>();
  const factory = (elf: string, module: string) =>
    packages.find((p) => p.aid === elf)?.modules.find((m) => m.aid === module)?.create;
  const mustGet = (aid: string): NativeApplet => {
    const a = instances.get(aid);
    if (!a) throw new Error(`native applet ${aid} has no instance`);
    return a;
  };
  return {
    handles: (elf) => packages.some((p) => p.aid === elf),
    install(req) {
      const create = factory(req.elf, req.module);
      if (!create) throw new Error(`native package ${req.elf} has no module ${req.module}`);
      instances.set(req.aid, create(req));
    },
    uninstall: (aid) => void instances.delete(aid),
    select: (aid, ctx) => mustGet(aid).select?.(ctx) ?? true,
    deselect: (aid, ctx) => mustGet(aid).deselect?.(ctx),
    process: (aid, cmd, ctx) => mustGet(aid).process(cmd, ctx),
    processData(aid, data) {
      const a = mustGet(aid);
      if (!a.processData) return new Uint8Array(0);
      return a.processData(data);
    },
    restore(entries) {
      instances.clear();
      for (const e of entries) {
        const create = factory(e.elf, e.module);
        if (create)
          instances.set(
            e.aid,
            create({ elf: e.elf, module: e.module, aid: e.aid, privileges: e.privileges, params: Buffer.from(e.params, 'hex') }),
          );
      }
    },
    instance: (aid) => instances.get(aid),
  };
}
