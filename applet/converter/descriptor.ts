// Field and method descriptors (JVMS 17 §4.3.2, §4.3.3) parsed into types the subset check and the JVM→JCVM
// translation can inspect: base types by their one-letter code, class types by internal name, arrays by element.

/** JVMS §4.3.2 Table 4.3-A base type characters. */
export type BaseCode = 'B' | 'C' | 'D' | 'F' | 'I' | 'J' | 'S' | 'Z';

export type FieldType =
  | { readonly kind: 'base'; readonly code: BaseCode; readonly text: string }
  | { readonly kind: 'class'; readonly name: string; readonly text: string }
  | { readonly kind: 'array'; readonly element: FieldType; readonly dimensions: number; readonly text: string };

export type Descriptor =
  | { readonly kind: 'field'; readonly type: FieldType }
  | { readonly kind: 'method'; readonly params: readonly FieldType[]; readonly returns: FieldType | 'void' };

/** A malformed descriptor; `position` is the character index where parsing failed. */
export class DescriptorError extends Error {
  readonly descriptor: string;
  readonly position: number;
  constructor(descriptor: string, position: number, what: string) {
    super(`bad descriptor "${descriptor}" at character ${position}: ${what}`);
    this.name = 'DescriptorError';
    this.descriptor = descriptor;
    this.position = position;
  }
}

const BASE = new Set<string>(['B', 'C', 'D', 'F', 'I', 'J', 'S', 'Z']);
/** JVMS §4.3.2: an array type may have at most 255 dimensions. */
const MAX_DIMENSIONS = 255;

/** Parses one FieldType starting at `pos`; returns it and the index after it. */
function fieldTypeAt(desc: string, pos: number): [FieldType, number] {
  const start = pos;
  let dims = 0;
  while (desc[pos] === '[') {
    dims++;
    pos++;
  }
  if (dims > MAX_DIMENSIONS) throw new DescriptorError(desc, start, `more than ${MAX_DIMENSIONS} array dimensions`);
  const c = desc[pos];
  let element: FieldType;
  if (c === undefined) throw new DescriptorError(desc, pos, 'descriptor ends where a type is expected');
  if (BASE.has(c)) {
    element = { kind: 'base', code: c as BaseCode, text: c };
    pos++;
  } else if (c === 'L') {
    const end = desc.indexOf(';', pos);
    if (end < 0) throw new DescriptorError(desc, pos, 'class type without terminating ";"');
    const name = desc.slice(pos + 1, end);
    // JVMS §4.2.1: internal names are non-empty and contain none of . ; [ (the separator is '/').
    if (name.length === 0 || /[.;[]/.test(name) || name.split('/').some((part) => part.length === 0)) {
      throw new DescriptorError(desc, pos + 1, `invalid class name "${name}"`);
    }
    element = { kind: 'class', name, text: desc.slice(pos, end + 1) };
    pos = end + 1;
  } else {
    throw new DescriptorError(desc, pos, `unexpected "${c}" where a type is expected`);
  }
  if (dims === 0) return [element, pos];
  return [{ kind: 'array', element, dimensions: dims, text: desc.slice(start, pos) }, pos];
}

/** A field descriptor (JVMS §4.3.2). */
export function parseFieldType(desc: string): FieldType {
  const [t, end] = fieldTypeAt(desc, 0);
  if (end !== desc.length) throw new DescriptorError(desc, end, 'trailing characters after the field type');
  return t;
}

/** A method descriptor (JVMS §4.3.3): ( {ParameterDescriptor} ) ReturnDescriptor. */
export function parseMethodDescriptor(desc: string): { params: FieldType[]; returns: FieldType | 'void' } {
  if (desc[0] !== '(') throw new DescriptorError(desc, 0, 'method descriptor must start with "("');
  const params: FieldType[] = [];
  let pos = 1;
  while (desc[pos] !== ')') {
    if (pos >= desc.length) throw new DescriptorError(desc, pos, 'missing ")"');
    const [t, next] = fieldTypeAt(desc, pos);
    params.push(t);
    pos = next;
  }
  pos++;
  let returns: FieldType | 'void';
  if (desc[pos] === 'V') {
    returns = 'void';
    pos++;
  } else {
    [returns, pos] = fieldTypeAt(desc, pos);
  }
  if (pos !== desc.length) throw new DescriptorError(desc, pos, 'trailing characters after the return type');
  return { params, returns };
}

/** Either kind of descriptor, told apart by the leading "(" of a method descriptor. */
export function parseDescriptor(desc: string): Descriptor {
  if (desc.startsWith('(')) return { kind: 'method', ...parseMethodDescriptor(desc) };
  return { kind: 'field', type: parseFieldType(desc) };
}

/** Every field type a descriptor mentions (parameters and return, or the one field type), arrays included as such. */
export function descriptorTypes(d: Descriptor): FieldType[] {
  if (d.kind === 'field') return [d.type];
  return d.returns === 'void' ? [...d.params] : [...d.params, d.returns];
}
