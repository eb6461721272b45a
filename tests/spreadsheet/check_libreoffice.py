"""convlearn's workbook recalculated by LibreOffice, cell for cell (the Python standard library and
`soffice` only). usage: check_libreoffice.py CONVLEARN_BIN WORKDIR

1. Trains the spreadsheet preset on generated shapes and writes its workbook for a picture.
2. LibreOffice recalculates every formula (a profile that recalculates xlsx files on load) and exports
   the sheet as CSV at full precision; every formula cell must equal the value convlearn cached in it.
3. Changes the first weight of conv1's kernel 0 in the workbook (and, by the same amount, in a copy of
   the model file), recalculates again, and compares with the workbook convlearn writes for the edited
   model: every formula after the weight changes as convlearn says it does.
Prints `# pass N` / `# fail N` lines for .ci/run's count."""
import csv, json, re, shutil, struct, subprocess, sys, zipfile
from pathlib import Path

TOL = 1e-4
bin_, work = sys.argv[1], Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)


def run(*args):
    return subprocess.run([bin_, *args], cwd=work, check=True, capture_output=True, text=True).stdout


def cells_of(xlsx):
    """Every formula cell of the first sheet with its cached value, and every number cell."""
    with zipfile.ZipFile(xlsx) as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    formulas, numbers = {}, {}
    for m in re.finditer(r'<c r="([A-Z]+[0-9]+)"[^>]*?(/>|>(.*?)</c>)', xml):
        ref, body = m.group(1), m.group(3) or ""
        v = re.search(r"<v>([^<]*)</v>", body)
        if "<f>" in body and v:
            formulas[ref] = float(v.group(1))
        elif v and 't="s"' not in m.group(0):
            numbers[ref] = float(v.group(1))
    return formulas, numbers


def ref_to_rc(ref):
    col, row = re.match(r"([A-Z]+)([0-9]+)", ref).groups()
    c = 0
    for ch in col:
        c = c * 26 + ord(ch) - 64
    return int(row) - 1, c - 1


def recalculated(xlsx):
    profile = work / "lo-profile"
    user = profile / "user"
    user.mkdir(parents=True, exist_ok=True)
    (user / "registrymodifications.xcu").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<oor:items xmlns:oor="http://openoffice.org/2001/registry" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        '<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" '
        'oor:op="fuse"><value>0</value></prop></item>\n</oor:items>\n')
    out = work / "csv"
    shutil.rmtree(out, ignore_errors=True)
    # CSV: comma, quote, UTF-8, from line 1, …, token 9 false = full precision, not as shown
    subprocess.run(["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to",
                    'csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false',
                    "--outdir", str(out), str(xlsx)], check=True, capture_output=True)
    rows = list(csv.reader(open(out / (Path(xlsx).stem + ".csv"), encoding="utf-8")))
    return lambda ref: float(rows[ref_to_rc(ref)[0]][ref_to_rc(ref)[1]])


def compare(what, want, got):
    worst = max(abs(got(ref) - v) for ref, v in want.items())
    ok = worst <= TOL
    print(f"{what}: {len(want)} formula cells, max |LibreOffice − convlearn| = {worst:.2e}")
    print(f"# {'pass' if ok else 'fail'} 1")
    return ok


run("train", "shapes", "--arch", "spreadsheet", "--epochs", "1", "--save", "net.safetensors",
    "--plot", "loss.png")
run("demo", "-o", "demo")
picture = str(next((work / "demo").glob("sample-*.png")))
report = json.loads(run("spreadsheet", "net.safetensors", picture, "-o", "net.xlsx", "--json"))
formulas, numbers = cells_of(work / "net.xlsx")
assert len(formulas) == report["formulas"], (len(formulas), report["formulas"])
ok = compare("recalculated", formulas, recalculated(work / "net.xlsx"))

# One weight changed by +0.5 in both the workbook and the model file.
cell = report["kernel_cells"][0][0][0]
old = numbers[cell]
with zipfile.ZipFile(work / "net.xlsx") as z:
    parts = {n: z.read(n) for n in z.namelist()}
xml = parts["xl/worksheets/sheet1.xml"].decode()
xml, n = re.subn(rf'(<c r="{cell}"[^>]*><v>)[^<]*(</v>)', rf"\g<1>{old + 0.5!r}\g<2>", xml)
assert n == 1, cell
parts["xl/worksheets/sheet1.xml"] = xml.encode()
with zipfile.ZipFile(work / "edited.xlsx", "w", zipfile.ZIP_DEFLATED) as z:
    for name, data in parts.items():
        z.writestr(name, data)

raw = bytearray((work / "net.safetensors").read_bytes())
header_len = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + header_len])
start = 8 + header_len + header["convs.0.conv.weight"]["data_offsets"][0]
(w0,) = struct.unpack("<f", raw[start:start + 4])
assert abs(w0 - old) < 1e-6, (w0, old)
raw[start:start + 4] = struct.pack("<f", old + 0.5)
(work / "edited.safetensors").write_bytes(bytes(raw))
run("spreadsheet", "edited.safetensors", picture, "-o", "edited-by-convlearn.xlsx")
want, _ = cells_of(work / "edited-by-convlearn.xlsx")
changed = sum(1 for ref in want if abs(want[ref] - formulas[ref]) > TOL)
print(f"the edited weight {cell} changes {changed} formula cells")
ok &= changed > 0 and compare("after editing one weight", want, recalculated(work / "edited.xlsx"))
sys.exit(0 if ok else 1)
