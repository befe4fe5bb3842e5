// Faults that end a command without a Java exception: malformed bytecode met at run time, stack overflow, a runaway
// loop. The JCRE answers 6F00 for them (JCRE 3.0.5 §6.? "fatal error" — a card mutes or answers 6F00); Java code
// cannot catch them, and the host process never sees a TypeError instead.

export class VmFault extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VmFault';
  }
}
