// The Java Card 3.0.5 API export tokens (emulator/vm/api/javacard-api-tokens.json, from the project's reference
// digest of the SDK export files) as typed data, loaded once.
// The same shape describes a library package the assembler produced (AssembledLibrary), so an importing package
// resolves names against the API and against earlier packages the same way.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface ExportedMethod {
  name: string;
  descriptor: string;
  token: number;
  kind: 'static' | 'virtual' | 'interface';
  flags: string[];
  declared_in_class?: boolean;
}

export interface ExportedField {
  name: string;
  descriptor: string;
  /** Static field token, instance field token, or 255 for compile-time constants. */
  token: number;
  flags: string[];
  constant?: number;
  /** "compile-time constant" in the API table; "static" / "instance" for assembled libraries. */
  kind?: string;
}

export interface ExportedClass {
  /** Dotted Java name, "javacard.framework.APDU". */
  name: string;
  token: number;
  flags: string[];
  super: string | null;
  interfaces: string[];
  fields: ExportedField[];
  methods: ExportedMethod[];
}

export interface ExportedPackage {
  /** Dotted package name. */
  name: string;
  /** Upper-case hex. */
  aid: string;
  major: number;
  minor: number;
  classes: ExportedClass[];
}

let cached: ExportedPackage[] | undefined;

/** The API table's path: JAVACARD_API_TOKENS overrides the copy kept with the natives. */
export function apiTablePath(): string {
  return process.env.JAVACARD_API_TOKENS ?? fileURLToPath(new URL('../api/javacard-api-tokens.json', import.meta.url));
}

/** All API packages (java.lang, javacard.*, javacardx.*, org.globalplatform), parsed once per process. */
export function apiPackages(): readonly ExportedPackage[] {
  if (!cached) {
    const json = JSON.parse(readFileSync(apiTablePath(), 'utf8')) as { packages: ExportedPackage[] };
    cached = json.packages;
  }
  return cached;
}
