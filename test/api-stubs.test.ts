// The Java Card API compile-time stubs (applet/api/src): up to date with the token table, every compile-time constant
// present with its exact value, and (with a JDK) compilable, with a small applet compiling against them.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateStubs, listJavaFiles, loadTokenTable, STUB_DIR } from '../applet/api/gen-stubs.ts';

const table = loadTokenTable();
const generated = generateStubs(table);

function javacAvailable(): boolean {
  const r = spawnSync('javac', ['-version'], { encoding: 'utf8' });
  return r.status === 0;
}
const HAVE_JDK = javacAvailable();
const REQUIRE_JDK = process.env.JPKI_REQUIRE_JDK === '1';
if (!HAVE_JDK && !REQUIRE_JDK) {
  console.warn('api-stubs: javac not found on PATH, skipping the compilation tests (set JPKI_REQUIRE_JDK=1 to fail instead)');
}

/** The javac options that compile against the stubs instead of the JDK's own class library (see applet/api/README.md). */
const JAVAC_OPTS = ['-source', '8', '-target', '8', '-Xlint:-options', '-encoding', 'UTF-8'];

function javac(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('javac', [...JAVAC_OPTS, ...args], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('API stubs: generated sources', () => {
  it('applet/api/src is exactly what gen-stubs.ts produces from the token table', () => {
    const onDisk = listJavaFiles(STUB_DIR);
    expect(onDisk).toEqual([...generated.keys()]);
    const differ = [...generated].filter(([f, text]) => readFileSync(join(STUB_DIR, f), 'utf8') !== text).map(([f]) => f);
    expect(differ, 'run: npx tsx applet/api/gen-stubs.ts').toEqual([]);
  });

  it('has a source for every class and interface of the table, with the right kind and modifiers', () => {
    let n = 0;
    for (const p of table.packages)
      for (const c of p.classes) {
        const local = c.name.slice(p.name.length + 1);
        const [top, ...inner] = local.split('$');
        const text = generated.get(`${p.name.replace(/\./g, '/')}/${top}.java`);
        expect(text, c.name).toBeDefined();
        expect(text).toContain(`package ${p.name};`);
        const simple = inner.length ? inner[inner.length - 1] : top;
        const kind = c.flags.includes('interface') ? 'interface' : 'class';
        const decl = new RegExp(`^\\s*public (?:static )?(?:abstract )?(?:final )?${kind} ${simple}\\b`, 'm');
        const line = text!.split('\n').find((l) => decl.test(l));
        expect(line, c.name).toBeDefined();
        if (kind === 'class') {
          expect(line!.includes(' abstract '), `${c.name} abstract`).toBe(c.flags.includes('abstract'));
          expect(line!.includes(' final '), `${c.name} final`).toBe(c.flags.includes('final'));
          if (c.super && c.super !== 'java.lang.Object') expect(line, c.name).toMatch(/ extends /);
        }
        n++;
      }
    expect(n).toBeGreaterThan(90);
  });

  it('declares every compile-time constant of the table with its exact value and type', () => {
    // Parse the generated text: class nesting from the declarations and closing braces, constants from the fields.
    const found = new Map<string, { type: string; value: number }>();
    for (const [path, text] of generated) {
      const pkg = path.slice(0, path.lastIndexOf('/')).replace(/\//g, '.');
      const stack: { name: string; indent: number }[] = [];
      for (const line of text.split('\n')) {
        const d = /^(\s*)public [a-z ]*?(?:class|interface) (\w+)/.exec(line);
        if (d) {
          stack.push({ name: d[2]!, indent: d[1]!.length });
          continue;
        }
        const close = /^(\s*)}$/.exec(line);
        if (close && stack.length && stack[stack.length - 1]!.indent === close[1]!.length) {
          stack.pop();
          continue;
        }
        const f = /^\s*public static final (byte|short) (\w+) = (-?\d+);/.exec(line);
        if (f) {
          const cls = `${pkg}.${stack.map((s) => s.name).join('$')}`;
          found.set(`${cls}.${f[2]}`, { type: f[1]!, value: Number(f[3]) });
        }
      }
    }
    let n = 0;
    for (const p of table.packages)
      for (const c of p.classes)
        for (const f of c.fields) {
          expect(f.constant, `${c.name}.${f.name} has a constant value`).toBeTypeOf('number');
          const type = f.descriptor === 'B' ? 'byte' : f.descriptor === 'S' ? 'short' : f.descriptor;
          expect(found.get(`${c.name}.${f.name}`), `${c.name}.${f.name}`).toEqual({ type, value: f.constant });
          n++;
        }
    expect(n).toBe(467);
    expect(found.size).toBe(n);
    // Spot checks against the published API documentation.
    expect(found.get('javacard.framework.ISO7816.SW_NO_ERROR')?.value).toBe(0x9000 - 0x10000);
    expect(found.get('javacard.framework.ISO7816.OFFSET_CDATA')?.value).toBe(5);
    expect(found.get('javacard.security.KeyBuilder.LENGTH_RSA_2048')?.value).toBe(2048);
    expect(found.get('org.globalplatform.GPSystem.CARD_TERMINATED')?.value).toBe(-1);
  });
});

const SAMPLE = `package sample.stubs;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.OwnerPIN;
import javacard.framework.UserException;
import javacard.framework.Util;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.RSAPrivateCrtKey;
import javacard.security.Signature;
import javacardx.apdu.ExtendedLength;
import javacardx.crypto.Cipher;
import org.globalplatform.GPSystem;
import org.globalplatform.SecureChannel;

public class Sample extends Applet implements ExtendedLength {
  private static final byte INS_VERIFY = (byte) 0x20;
  private static final byte INS_SIGN = (byte) 0x2A;
  private final OwnerPIN pin;
  private final KeyPair keys;
  private final Signature signer;
  private final byte[] scratch;

  private Sample(byte[] b, short off, byte len) {
    pin = new OwnerPIN((byte) 3, (byte) 8);
    pin.update(b, off, len);
    keys = new KeyPair(KeyPair.ALG_RSA_CRT, KeyBuilder.LENGTH_RSA_2048);
    keys.genKeyPair();
    signer = Signature.getInstance(Signature.ALG_RSA_SHA_256_PKCS1, false);
    scratch = JCSystem.makeTransientByteArray((short) 64, JCSystem.CLEAR_ON_DESELECT);
    register(b, (short) (off + 1), b[off]);
  }

  public static void install(byte[] b, short off, byte len) {
    new Sample(b, off, len);
  }

  public void process(APDU apdu) {
    if (selectingApplet()) return;
    byte[] buf = apdu.getBuffer();
    if ((buf[ISO7816.OFFSET_CLA] & 0x04) != 0) {
      SecureChannel sc = GPSystem.getSecureChannel();
      sc.unwrap(buf, (short) 0, (short) (ISO7816.OFFSET_CDATA + (buf[ISO7816.OFFSET_LC] & 0xFF)));
    }
    switch (buf[ISO7816.OFFSET_INS]) {
      case INS_VERIFY: {
        short n = apdu.setIncomingAndReceive();
        if (!pin.check(buf, ISO7816.OFFSET_CDATA, (byte) n)) {
          ISOException.throwIt((short) (0x63C0 | pin.getTriesRemaining()));
        }
        return;
      }
      case INS_SIGN: {
        if (!pin.isValidated()) ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        short n = apdu.setIncomingAndReceive();
        Util.arrayCopyNonAtomic(buf, ISO7816.OFFSET_CDATA, scratch, (short) 0, n);
        RSAPrivateCrtKey priv = (RSAPrivateCrtKey) keys.getPrivate();
        signer.init(priv, Signature.MODE_SIGN);
        short len = signer.sign(scratch, (short) 0, n, buf, (short) 0);
        apdu.setOutgoingAndSend((short) 0, len);
        return;
      }
      default:
        try {
          check(buf[ISO7816.OFFSET_P1]);
        } catch (UserException e) {
          ISOException.throwIt(Util.makeShort((byte) 0x6A, (byte) e.getReason()));
        }
        ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
    }
  }

  private static void check(byte p1) throws UserException {
    if (p1 != 0) UserException.throwIt((short) 0x86);
    Cipher c = Cipher.getInstance(Cipher.ALG_AES_BLOCK_128_CBC_NOPAD, false);
    if (c == null) UserException.throwIt((short) 0x80);
  }
}
`;

describe.skipIf(!HAVE_JDK && !REQUIRE_JDK)('API stubs: javac', () => {
  let dir = '';
  const classes = () => join(dir, 'api-classes');
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'jpki-api-stubs-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('javac is on PATH', () => {
    expect(HAVE_JDK, 'JPKI_REQUIRE_JDK=1 but javac was not found').toBe(true);
  });

  it('the stubs compile on their own (no JDK class library) to class file version 52', () => {
    const sources = listJavaFiles(STUB_DIR).map((f) => join(STUB_DIR, f));
    const r = javac(['-bootclasspath', '', '-d', classes(), ...sources]);
    expect(r.out).toBe('');
    expect(r.status).toBe(0);
    const cls = readFileSync(join(classes(), 'javacard/framework/Applet.class'));
    expect(cls.readUInt32BE(0)).toBe(0xcafebabe);
    expect(cls.readUInt16BE(6)).toBe(52);
    for (const c of ['javacard/security/Signature$OneShot', 'org/globalplatform/GPSystem', 'java/lang/Object'])
      expect(existsSync(join(classes(), `${c}.class`)), c).toBe(true);
  });

  it('an applet using APDU, Util, ISO7816, OwnerPIN, Signature, GP compiles against them', () => {
    const src = join(dir, 'sample/sample/stubs/Sample.java');
    mkdirSync(join(dir, 'sample/sample/stubs'), { recursive: true });
    writeFileSync(src, SAMPLE);
    const r = javac(['-bootclasspath', classes(), '-g', '-d', join(dir, 'sample-out'), src]);
    expect(r.out).toBe('');
    expect(r.status).toBe(0);
    // Constants are inlined: 0x6982 (SW_SECURITY_STATUS_NOT_SATISFIED) appears as a sipush operand, not a field ref.
    const cls = readFileSync(join(dir, 'sample-out/sample/stubs/Sample.class'));
    expect(cls.includes(Buffer.from([0x11, 0x69, 0x82]))).toBe(true);
    expect(cls.includes(Buffer.from('SW_SECURITY_STATUS_NOT_SATISFIED'))).toBe(false);
  });

  it('the JDK class library is not visible: String is rejected', () => {
    const src = join(dir, 'bad/Bad.java');
    mkdirSync(join(dir, 'bad'), { recursive: true });
    writeFileSync(src, 'package bad;\npublic class Bad { Object s = "text"; }\n');
    const r = javac(['-bootclasspath', classes(), '-d', join(dir, 'bad-out'), src]);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/java\.lang\.String/);
  });
});
