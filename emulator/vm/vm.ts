// The VM as natives and the JCRE see it (types.ts Vm): the heap, the cycle meter, the interpreter, API class lookup,
// Java exceptions raised by the JCRE, and calls back into bytecode (Applet.process, Shareable lookups, install).
import type { ChipStore } from '../store.ts';
import type { ContextId, JcreServices, JcreState, LinkedClass, LinkedMethod, Ref, Vm } from './types.ts';
import { isArray } from './types.ts';
import type { ChipHeap, HeapSizes } from './heap.ts';
import { createHeap } from './heap.ts';
import type { VmCycleMeter } from './cycles.ts';
import { opcodeCostTable } from './cycles.ts';
import type { ApiRegistry } from './api/registry.ts';
import type { Interpreter } from './interpreter.ts';
import { createInterpreter } from './interpreter.ts';
import { throwJcre } from './api/exceptions.ts';
import { VmFault } from './exceptions.ts';

export interface VmOptions {
  store: ChipStore;
  sizes: HeapSizes;
  meter: VmCycleMeter;
  api: ApiRegistry;
  /** LinkedClass.key → class (API names and "<pkgAID>:<offset>"), to rebuild instances from the store. */
  resolveClass(key: string): LinkedClass | undefined;
  services: JcreServices;
  jcre: JcreState;
  /** The applet instance whose context is `ctx` for JCSystem.getAID / getPreviousContextAID (null: the JCRE). */
  appletOfContext(ctx: ContextId): string | null;
  /** Persistent bytes the card manager's load files take. */
  reservedPersistent?: () => number;
  stackWords?: number;
  maxFrames?: number;
  maxBytecodes?: number;
}

export interface ChipVm extends Vm {
  readonly heap: ChipHeap;
  readonly cycles: VmCycleMeter;
  readonly interp: Interpreter;
  readonly api: ApiRegistry;
  /** Runs a method in context `ctx` (the JCRE calling install/select/process in the applet's context). */
  invokeIn(ctx: ContextId, method: LinkedMethod, args: number[]): number;
  /** Virtual or interface dispatch of an API method on `ref` in context `ctx`. */
  invokeVirtualIn(ctx: ContextId, ref: Ref, apiMethod: string, args: number[]): number;
  /** The method `ref`'s class runs for an API virtual/interface method, or undefined (not implemented / not that type). */
  resolveVirtual(ref: Ref, apiMethod: string): LinkedMethod | undefined;
}

export function createVm(opts: VmOptions): ChipVm {
  const { api, meter } = opts;
  let interp: Interpreter | undefined;
  const objectClass = (): LinkedClass => {
    const c = api.classes.get('java.lang.Object');
    if (!c) throw new Error('the API has no java.lang.Object');
    return c;
  };
  const apiClass = (name: string): LinkedClass => {
    const c = api.classes.get(name);
    if (!c) throw new VmFault(`no API class ${name}`);
    return c;
  };
  const context = (): ContextId => (interp ? interp.context : 0);

  const resolveVirtual = (ref: Ref, apiMethod: string): LinkedMethod | undefined => {
    const v = api.virtuals.get(apiMethod);
    if (!v) throw new VmFault(`no API virtual method ${apiMethod}`);
    const o = heap.peek(ref);
    if (!o) return undefined;
    const cls = isArray(o) ? objectClass() : o.cls;
    if (v.iface) return cls.interfaceMethods.get(v.cls)?.[v.token];
    if (cls !== v.cls && !isSubclass(cls, v.cls)) return undefined;
    return cls.publicVirtuals[v.token];
  };

  const vm: ChipVm = {
    get heap() {
      return heap;
    },
    cycles: meter,
    get interp() {
      return interp as Interpreter;
    },
    api,
    get context() {
      return context();
    },
    get currentApplet() {
      return opts.appletOfContext(context());
    },
    get previousApplet() {
      const p = interp?.previousContext();
      return p === undefined ? null : opts.appletOfContext(p);
    },
    apiClass,
    throwApi(className: string, reason?: number): never {
      return throwJcre(vm, className, reason ?? 0);
    },
    invoke(method, args) {
      return (interp as Interpreter).run(method, args, context());
    },
    invokeVirtual(ref, apiMethod, args) {
      return vm.invokeVirtualIn(context(), ref, apiMethod, args);
    },
    invokeIn(ctx, method, args) {
      return (interp as Interpreter).run(method, args, ctx);
    },
    invokeVirtualIn(ctx, ref, apiMethod, args) {
      if (ref === 0) return throwJcre(vm, 'java.lang.NullPointerException');
      const m = resolveVirtual(ref, apiMethod);
      if (!m) throw new VmFault(`object ${ref} has no ${apiMethod}`);
      return (interp as Interpreter).run(m, [ref, ...args], ctx);
    },
    resolveVirtual,
    get jcre() {
      return opts.jcre;
    },
    services: opts.services,
  };

  const heap: ChipHeap = createHeap({
    store: opts.store,
    sizes: opts.sizes,
    meter,
    reservedPersistent: opts.reservedPersistent,
    resolveClass: opts.resolveClass,
    throwApi: (className, reason) => throwJcre(vm, className, reason ?? 0),
    context,
  });
  interp = createInterpreter({
    heap,
    meter,
    costs: opcodeCostTable(meter.profile),
    vm: () => vm,
    throwApi: (className, reason) => throwJcre(vm, className, reason ?? 0),
    objectClass,
    stackWords: opts.stackWords,
    maxFrames: opts.maxFrames,
    maxBytecodes: opts.maxBytecodes,
  });
  return vm;
}

function isSubclass(c: LinkedClass, t: LinkedClass): boolean {
  for (let s: LinkedClass | null = c; s; s = s.superclass) if (s === t) return true;
  return false;
}
