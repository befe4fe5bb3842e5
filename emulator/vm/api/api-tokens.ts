// The Java Card 3.0.5 API export tokens (classic) and org.globalplatform 1.6 in the compact shape the API registry
// links against (JCVM 3.0.5 ch. 4.3 tokens), derived from javacard-api-tokens.json (Oracle SDK 3.0.5u4 export files; GP
// export 1.6). Methods: [name, descriptor, token, kind, flags], kind s = static (incl. <init>), v = virtual,
// i = interface; flags: public 1, protected 4, static 8, final 0x10, abstract 0x400. Every externally visible method is
// listed, inherited ones included, with its token in that class (export file rule).
import { apiPackages } from '../cap/api-table.ts';

export type ApiMethodSpec = readonly [name: string, descriptor: string, token: number, kind: 's' | 'v' | 'i', flags: number];
export interface ApiClassSpec {
  readonly name: string;
  readonly token: number;
  /** Class access flags of the export file: interface 0x0200, abstract 0x0400, shareable 0x0800, remote 0x1000. */
  readonly flags: number;
  readonly super: string | null;
  readonly interfaces: readonly string[];
  readonly methods: readonly ApiMethodSpec[];
}
export interface ApiPackageSpec {
  readonly name: string;
  readonly aid: string;
  readonly major: number;
  readonly minor: number;
  readonly classes: readonly ApiClassSpec[];
}

const METHOD_FLAGS: Record<string, number> = { public: 0x1, protected: 0x4, static: 0x8, final: 0x10, abstract: 0x400 };
const KIND = { static: 's', virtual: 'v', interface: 'i' } as const;

export const API_PACKAGES: readonly ApiPackageSpec[] = apiPackages().map((p) => ({
  name: p.name,
  aid: p.aid,
  major: p.major,
  minor: p.minor,
  classes: p.classes.map((c) => ({
    name: c.name,
    token: c.token,
    flags: Number.parseInt((c as { access_flags?: string }).access_flags ?? '0', 16),
    super: c.super,
    interfaces: c.interfaces,
    methods: c.methods.map((m): ApiMethodSpec => [
      m.name,
      m.descriptor,
      m.token,
      KIND[m.kind],
      m.flags.reduce((f, name) => f | (METHOD_FLAGS[name] ?? 0), 0),
    ]),
  })),
}));
