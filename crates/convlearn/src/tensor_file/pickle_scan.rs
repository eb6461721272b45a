//! Which Python globals a pickle names, found by walking its opcodes without building or running
//! anything: the check that keeps a hostile `.pth` from asking for `os.system`.
//!
//! The walk keeps a shadow of the unpickler's stack that knows only which entries are short
//! strings, which is exactly what `STACK_GLOBAL` (protocol 4+) takes its module and name from.
//! Every opcode's stack effect is the one CPython's `pickletools` documents; an opcode this walk
//! does not know, a length past the end of the data, or a `STACK_GLOBAL` whose names it cannot see
//! is an error, so a global can never slip past unseen.

use std::collections::HashMap;

/// Strings longer than this are tracked as "not a name" (module and class names are short), so a
/// memo of huge strings fetched over and over costs no copies.
const NAME_MAX: usize = 256;

/// The deepest shadow stack or the most memo entries accepted: far beyond any state dict, and a
/// bound on what a hostile pickle can make this walk hold.
const ENTRIES_MAX: usize = 1 << 22;

/// One Python global (`module.name`) a pickle refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    /// `torch._utils`, `collections`, `os`…
    pub module: String,
    /// `_rebuild_tensor_v2`, `OrderedDict`, `system`…
    pub name: String,
}

impl std::fmt::Display for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

#[derive(Clone)]
enum Entry {
    Mark,
    Name(String),
    Other,
}

/// Walks the pickle at the start of `bytes` up to its `STOP`: every global it names, in order
/// (those before a fault too, so a hostile file is named for its global, not its later damage),
/// and the offset just past the `STOP` or what is wrong at which byte.
pub fn scan(bytes: &[u8]) -> (Vec<Global>, Result<usize, String>) {
    let mut walk = Walk {
        bytes,
        at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        globals: Vec::new(),
    };
    let end = walk.run().map(|()| walk.at);
    (walk.globals, end)
}

struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Entry>,
    memo: HashMap<u64, Entry>,
    globals: Vec<Global>,
}

impl Walk<'_> {
    fn run(&mut self) -> Result<(), String> {
        loop {
            let start = self.at;
            let op = self.take(1)?[0];
            self.step(op)
                .map_err(|e| format!("pickle byte {start} (opcode 0x{op:02x}): {e}"))?;
            if op == b'.' {
                return Ok(());
            }
        }
    }

    fn step(&mut self, op: u8) -> Result<(), String> {
        match op {
            b'.' => {}                       // STOP
            b'(' => self.push(Entry::Mark)?, // MARK
            b'0' => drop(self.pop()?),       // POP
            b'1' => self.pop_mark()?,        // POP_MARK
            b'2' => {
                // DUP
                let top = self.top()?.clone();
                self.push(top)?;
            }
            // Numbers, None, booleans: a value that is not a name.
            b'F' | b'I' | b'L' => self.line_then_other()?,
            b'J' => self.skip_then_other(4)?,
            b'K' => self.skip_then_other(1)?,
            b'M' => self.skip_then_other(2)?,
            b'G' => self.skip_then_other(8)?,
            b'N' | 0x88 | 0x89 => self.push(Entry::Other)?,
            0x8a => {
                // LONG1
                let n = self.take(1)?[0] as u64;
                self.skip_then_other(n)?
            }
            0x8b => {
                // LONG4: a signed length
                let n = i32::from_le_bytes(self.array::<4>()?);
                let n = u64::try_from(n).map_err(|_| format!("LONG4 of negative length {n}"))?;
                self.skip_then_other(n)?
            }
            // Strings: possibly a module or class name.
            b'S' => {
                let line = self.line()?;
                let text = line.trim_matches(|c| c == '\'' || c == '"').to_string();
                self.push_text(text)?
            }
            b'V' => {
                let line = self.line()?;
                self.push_text(line)?
            }
            b'T' => {
                let n = i32::from_le_bytes(self.array::<4>()?);
                let n =
                    u64::try_from(n).map_err(|_| format!("BINSTRING of negative length {n}"))?;
                self.counted_text(n)?
            }
            b'U' | 0x8c => {
                let n = self.take(1)?[0] as u64;
                self.counted_text(n)?
            }
            b'X' => {
                let n = u32::from_le_bytes(self.array::<4>()?) as u64;
                self.counted_text(n)?
            }
            0x8d => {
                let n = u64::from_le_bytes(self.array::<8>()?);
                self.counted_text(n)?
            }
            // Bytes: never a name.
            b'B' => {
                let n = u32::from_le_bytes(self.array::<4>()?) as u64;
                self.skip_then_other(n)?
            }
            b'C' => {
                let n = self.take(1)?[0] as u64;
                self.skip_then_other(n)?
            }
            0x8e | 0x96 => {
                let n = u64::from_le_bytes(self.array::<8>()?);
                self.skip_then_other(n)?
            }
            // Containers.
            b']' | b')' | b'}' | 0x8f => self.push(Entry::Other)?,
            b'a' => drop(self.pop()?),              // APPEND
            b'e' | b'u' | 0x90 => self.pop_mark()?, // APPENDS, SETITEMS, ADDITEMS
            b'l' | b't' | b'd' | 0x91 => {
                // LIST, TUPLE, DICT, FROZENSET
                self.pop_mark()?;
                self.push(Entry::Other)?
            }
            0x85 => self.replace(1)?, // TUPLE1
            0x86 => self.replace(2)?, // TUPLE2
            0x87 => self.replace(3)?, // TUPLE3
            b's' => {
                // SETITEM
                self.pop()?;
                self.pop()?;
            }
            // The memo.
            b'g' => {
                let key = self.line_index()?;
                self.get(key)?
            }
            b'h' => {
                let key = self.take(1)?[0] as u64;
                self.get(key)?
            }
            b'j' => {
                let key = u32::from_le_bytes(self.array::<4>()?) as u64;
                self.get(key)?
            }
            b'p' => {
                let key = self.line_index()?;
                self.put(key)?
            }
            b'q' => {
                let key = self.take(1)?[0] as u64;
                self.put(key)?
            }
            b'r' => {
                let key = u32::from_le_bytes(self.array::<4>()?) as u64;
                self.put(key)?
            }
            0x94 => {
                // MEMOIZE
                let key = self.memo.len() as u64;
                self.put(key)?
            }
            // Globals and the calls that use them.
            b'c' => {
                // GLOBAL module\nname\n
                let module = self.line()?;
                let name = self.line()?;
                self.globals.push(Global { module, name });
                self.push(Entry::Other)?
            }
            0x93 => {
                // STACK_GLOBAL
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Entry::Name(module), Entry::Name(name)) => {
                        self.globals.push(Global { module, name })
                    }
                    _ => return Err("STACK_GLOBAL on values that are not plain strings".into()),
                }
                self.push(Entry::Other)?
            }
            b'i' => {
                // INST module\nname\n: a call of that class on the items since the mark
                let module = self.line()?;
                let name = self.line()?;
                self.globals.push(Global { module, name });
                self.pop_mark()?;
                self.push(Entry::Other)?
            }
            b'o' => {
                // OBJ: class and arguments since the mark
                self.pop_mark()?;
                self.push(Entry::Other)?
            }
            b'R' | 0x81 => self.replace(2)?, // REDUCE, NEWOBJ
            0x92 => self.replace(3)?,        // NEWOBJ_EX
            b'b' => drop(self.pop()?),       // BUILD
            b'P' => self.line_then_other()?, // PERSID
            b'Q' => self.replace(1)?,        // BINPERSID
            // Framing and the protocol header.
            0x80 => drop(self.take(1)?),
            0x95 => drop(self.take(8)?),
            0x82..=0x84 => return Err("the extension registry (EXT1/2/4) is not accepted".into()),
            0x97 | 0x98 => return Err("out-of-band buffers are not accepted".into()),
            other => return Err(format!("0x{other:02x} is not a pickle opcode")),
        }
        Ok(())
    }

    fn take(&mut self, n: u64) -> Result<&[u8], String> {
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            return Err(format!("claims {n} bytes, but only {left} remain"));
        }
        let s = &self.bytes[self.at..self.at + n as usize];
        self.at += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64)?);
        Ok(a)
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("a text argument has no end of line")?;
        self.at += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn line_index(&mut self) -> Result<u64, String> {
        let line = self.line()?;
        line.trim()
            .parse()
            .map_err(|_| format!("memo index '{line}' is not a number"))
    }

    fn line_then_other(&mut self) -> Result<(), String> {
        self.line()?;
        self.push(Entry::Other)
    }

    fn skip_then_other(&mut self, n: u64) -> Result<(), String> {
        self.take(n)?;
        self.push(Entry::Other)
    }

    fn counted_text(&mut self, n: u64) -> Result<(), String> {
        let bytes = self.take(n)?;
        let entry = if bytes.len() <= NAME_MAX {
            Entry::Name(String::from_utf8_lossy(bytes).into_owned())
        } else {
            Entry::Other
        };
        self.push(entry)
    }

    fn push_text(&mut self, text: String) -> Result<(), String> {
        let entry = if text.len() <= NAME_MAX {
            Entry::Name(text)
        } else {
            Entry::Other
        };
        self.push(entry)
    }

    fn push(&mut self, entry: Entry) -> Result<(), String> {
        if self.stack.len() >= ENTRIES_MAX {
            return Err(format!("the stack grows past {ENTRIES_MAX} entries"));
        }
        self.stack.push(entry);
        Ok(())
    }

    fn pop(&mut self) -> Result<Entry, String> {
        match self.stack.pop() {
            Some(Entry::Mark) => Err("a value was expected, the stack holds a mark".into()),
            Some(e) => Ok(e),
            None => Err("the stack is empty".into()),
        }
    }

    fn top(&self) -> Result<&Entry, String> {
        self.stack
            .last()
            .ok_or_else(|| "the stack is empty".to_string())
    }

    fn pop_mark(&mut self) -> Result<(), String> {
        loop {
            match self.stack.pop() {
                Some(Entry::Mark) => return Ok(()),
                Some(_) => {}
                None => return Err("no mark on the stack".into()),
            }
        }
    }

    /// Pops `n` values and pushes one result (a call, a tuple).
    fn replace(&mut self, n: usize) -> Result<(), String> {
        for _ in 0..n {
            self.pop()?;
        }
        self.push(Entry::Other)
    }

    fn get(&mut self, key: u64) -> Result<(), String> {
        let entry = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("memo entry {key} was never stored"))?;
        self.push(entry)
    }

    fn put(&mut self, key: u64) -> Result<(), String> {
        let top = self.top()?.clone();
        if self.memo.len() >= ENTRIES_MAX && !self.memo.contains_key(&key) {
            return Err(format!("the memo grows past {ENTRIES_MAX} entries"));
        }
        self.memo.insert(key, top);
        Ok(())
    }
}

/// Whether a weights file may name `global`: PyTorch's tensor-rebuilding functions, its storage
/// and dtype objects, and the containers a state dict is built from. Nothing else is needed to
/// read tensors, so nothing else is accepted.
pub fn allowed(global: &Global) -> bool {
    let (module, name) = (global.module.as_str(), global.name.as_str());
    match module {
        "torch._utils" => matches!(
            name,
            "_rebuild_tensor"
                | "_rebuild_tensor_v2"
                | "_rebuild_tensor_v3"
                | "_rebuild_parameter"
                | "_rebuild_parameter_with_state"
        ),
        "torch._tensor" => name == "_rebuild_from_type_v2",
        "torch.nn.parameter" => name == "Parameter",
        "torch" => {
            name == "Tensor"
                || name == "Size"
                || name.ends_with("Storage") && name.chars().all(|c| c.is_ascii_alphanumeric())
                || matches!(
                    name,
                    "float64"
                        | "float32"
                        | "float16"
                        | "bfloat16"
                        | "int64"
                        | "int32"
                        | "int16"
                        | "int8"
                        | "uint8"
                        | "uint16"
                        | "uint32"
                        | "uint64"
                        | "bool"
                )
        }
        "collections" => name == "OrderedDict",
        "builtins" | "__builtin__" => matches!(name, "set" | "frozenset"),
        _ => false,
    }
}
