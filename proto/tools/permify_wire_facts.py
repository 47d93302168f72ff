"""Derive the wire facts of Permify's public API from the ts-proto code in @permify/permify-node.

Usage: python3 permify_wire_facts.py PACKAGE_DIR > tests/data/permify_wire_facts.txt
where PACKAGE_DIR is an unpacked `npm pack @permify/permify-node` (the folder holding dist/).

It reads only facts: each message's `encode` (tag = field number and wire type, the writer
method = scalar type, the message class = message type), `fromJSON` (JSON names), interface
types (enums, oneofs), enum values and service definitions. tests/wire_facts.rs checks the
descriptors built from our own .proto files against its output.
Output lines:
  E <enum> <NAME=number>...
  M <message>
  F <message> <field> <number> <singular|repeated|map> <type> json=<json_name> [oneof=<name>]
  S <service> <method> <request> <response> <client_streaming> <server_streaming>
"""
import json, os, re, sys
ROOT = os.path.join(sys.argv[1], 'dist/src/grpc/generated')
# ts-proto only shows lowerCamelCase names; a proto field name that is not the snake_case form
# of its ts name must be listed here (checked against Permify's published base.proto).
PROTO_NAME_OVERRIDES = {('base.v1.TupleToUserSet', 'tupleSet'): 'tupleSet'}
FILES = [('base/v1/base.ts', 'base.v1'), ('base/v1/service.ts', 'base.v1'), ('base/v1/errors.ts', 'base.v1'),
         ('google/api/expr/v1alpha1/syntax.ts', 'google.api.expr.v1alpha1'),
         ('google/api/expr/v1alpha1/checked.ts', 'google.api.expr.v1alpha1')]
WKT = {'Any', 'Struct', 'Timestamp', 'Duration', 'Empty', 'NullValue'}

def snake(n):
    return re.sub(r'([A-Z])', lambda m: '_' + m.group(1).lower(), n)

out = []
for rel, pkg in FILES:
    src = open(os.path.join(ROOT, rel)).read()
    # imports: name -> full name
    imports = {}
    for m in re.finditer(r'import \{([^}]*)\} from "([^"]+)";', src):
        names, path = m.group(1), m.group(2)
        for n in names.split(','):
            n = n.strip()
            if not n: continue
            if ' as ' in n:
                orig, alias = [x.strip() for x in n.split(' as ')]
            else:
                orig = alias = n
            if 'expr/v1alpha1' in path:
                imports[alias] = 'google.api.expr.v1alpha1.' + orig.replace('_', '.')
            elif 'protobuf/' in path:
                imports[alias] = 'google.protobuf.' + orig
            elif path == './base':
                imports[alias] = 'base.v1.' + orig.replace('_', '.')
            elif path == './syntax':
                imports[alias] = 'google.api.expr.v1alpha1.' + orig.replace('_', '.')
    enum_order = re.findall(r'^export enum (\w+)', src, re.M)
    local_enums = set(enum_order)
    for en in enum_order:
        body = re.search(r'^export enum %s \{\n(.*?)\n\}' % en, src, re.M | re.S).group(1)
        vals = [(a, int(b)) for a, b in re.findall(r'^\s+(\w+) = (-?\d+),', body, re.M) if a != 'UNRECOGNIZED']
        out.append('E %s.%s %s' % (pkg, en.replace('_', '.'), ' '.join('%s=%d' % v for v in vals)))
    def full(tsname):
        if tsname in imports: return imports[tsname]
        return pkg + '.' + tsname.replace('_', '.')
    enum_names = local_enums | {k for k, v in imports.items() if k[0].isupper() and (k in ('CheckResult', 'NullValue'))}
    # interfaces
    ifaces = {}
    for m in re.finditer(r'^export interface (\w+) \{\n(.*?)\n\}', src, re.M | re.S):
        name, body = m.group(1), m.group(2)
        body = re.sub(r'/\*.*?\*/', '', body, flags=re.S)
        body = re.sub(r'//[^\n]*', '', body)
        fields = {}
        oneofs = {}
        body = re.sub(r'\s+', ' ', body).strip()
        parts=[]; depth=0; cur=''
        for ch in body:
            if ch in '{': depth+=1
            if ch in '}': depth-=1
            if ch==';' and depth==0:
                parts.append(cur.strip()); cur=''
            else: cur+=ch
        for part in parts:
            fm = re.match(r'(\w+)(\??): (.*)$', part)
            fname, opt, ftype = fm.group(1), fm.group(2), fm.group(3)
            if '$case' in ftype:
                cases = re.findall(r'\$case: "(\w+)";\s*\w+: ([^;}]+)', ftype)
                oneofs[fname] = [c for c, _ in cases]
                for c, t in cases: fields[c] = t.strip()
            else:
                fields[fname] = ftype.strip()
        ifaces[name] = (fields, oneofs)
    blocks = re.split(r'\nexport const (\w+): MessageFns<\s*\w+\s*> = \{\n', src)
    msgs = {}
    for i in range(1, len(blocks), 2):
        name, body = blocks[i], blocks[i + 1]
        enc = re.search(r'encode\(\s*message[^{]*\{\n(.*?)\n    return writer;', body, re.S).group(1)
        enc = re.sub(r'\s+', ' ', enc)
        fj = re.search(r'fromJSON\(object: any\)[^\n]*\n(.*?)\n  \},\n', body, re.S).group(1)
        fields = []
        for m in re.finditer(r'writer\.uint32\((\d+)\)', enc):
            tag = int(m.group(1)); num = tag >> 3; wt = tag & 7
            before = enc[:m.start()]; after = enc[m.end():]
            label = 'singular'; typ = None; fld = None
            me = re.search(r'(\w+)\.encode\(\s*(\{[^}]*\}|[^,]+?),\s*$', before)
            if me:
                typ = full(me.group(1)); expr = me.group(2)
                if expr.startswith('v'):
                    label = 'repeated'; fld = re.findall(r'for \(const v of message\.(\w+)\)', before)[-1]
                elif expr.startswith('{ key'):
                    label = 'map'
                    fl = re.findall(r'(?:Object\.entries\(message\.(\w+)\)|message\.(\w+)\.forEach)', before)[-1]
                    fld = fl[0] or fl[1]
                else:
                    fld = re.findall(r'message\.([\w.]+)', expr)[-1].split('.')[-1]
            else:
                ms = re.match(r'\.(\w+)\(([^)]*)\)', after)
                meth, arg = ms.group(1), ms.group(2)
                if meth == 'fork':
                    mp = re.match(r'\.fork\(\); for \(const v of message\.(\w+)\) \{ writer\.(\w+)\(v\)', after)
                    label = 'repeated(packed)'; fld = mp.group(1); typ = mp.group(2)
                elif arg.startswith('v'):
                    label = 'repeated'; typ = meth; fld = re.findall(r'for \(const v of message\.(\w+)\)', before)[-1]
                else:
                    typ = meth; fld = re.findall(r'message\.([\w.]+)', arg)[-1].split('.')
                    fld = [x for x in fld if x not in ('toString',)][-1]
            fields.append([fld, num, wt, label, typ])
        fjkeys = []
        for mm in re.finditer(r'object\??\.(\w+)', fj):
            if mm.group(1) not in fjkeys: fjkeys.append(mm.group(1))
        msgs[name] = (fields, fjkeys)
    for name, (fields, fjkeys) in msgs.items():
        if name.endswith('Entry') and name in msgs and len(fields) == 2 and fields[0][0] == 'key':
            continue
        ifields, oneofs = ifaces[name]
        # json keys are listed in the same order as interface fields
        iorder = list(ifields.keys())
        assert len(iorder) == len(fjkeys), (name, iorder, fjkeys)
        jmap = dict(zip(iorder, fjkeys))
        fname_full = pkg + '.' + name.replace('_', '.')
        out.append('M %s' % fname_full)
        for fld, num, wt, label, typ in sorted(fields, key=lambda f: f[1]):
            tstype = ifields[fld]
            t = typ
            if typ in ('int32',) and label == 'singular':
                base = tstype.replace(' | undefined', '')
                if base in local_enums or base in imports and base in ('CheckResult', 'NullValue'):
                    t = full(base)
            if label == 'repeated(packed)':
                base = tstype.rstrip('[]')
                if base in local_enums: t = full(base)
                label = 'repeated'
            if label == 'map':
                ef, _ = msgs[[k for k in msgs if k.endswith('Entry') and k.startswith(name + '_') and k[len(name)+1:-5].lower() == fld.lower()][0]]
                entry_name = [k for k in msgs if k.endswith('Entry') and k.startswith(name + '_') and k[len(name)+1:-5].lower() == fld.lower()][0]
                eif, _ = ifaces[entry_name]
                kv = []
                for ef_ in ef:
                    tt = ef_[4]
                    b = eif[ef_[0]].replace(' | undefined', '')
                    if tt == 'int32' and (b in local_enums or b in ('CheckResult',)): tt = full(b)
                    kv.append(tt)
                t = 'map<%s,%s>' % tuple(kv)
            oneof = [o for o, cs in oneofs.items() if fld in cs]
            pname = PROTO_NAME_OVERRIDES.get((fname_full, fld), snake(fld))
            out.append('F %s %s %d %s %s json=%s%s' % (fname_full, pname, num, label, t, jmap[fld],
                                                       (' oneof=' + snake(oneof[0])) if oneof else ''))
    # services
    svc = None
    for m in re.finditer(r'fullName: "([\w.]+)"|name: "(\w+)",\n\s+requestType: (\w+),\n\s+requestStream: (\w+),\n\s+responseType: (\w+),\n\s+responseStream: (\w+),', src):
        if m.group(1): svc = m.group(1); continue
        out.append('S %s %s %s %s %s %s' % (svc, m.group(2), full(m.group(3)), full(m.group(5)), m.group(4), m.group(6)))

version = json.load(open(os.path.join(sys.argv[1], 'package.json')))['version']
print("# Wire facts of Permify's public API, derived by tools/permify_wire_facts.py from")
print('# @permify/permify-node %s (ts-proto output). Checked by tests/wire_facts.rs.' % version)
print('\n'.join(out))
