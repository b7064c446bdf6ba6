//! No import circles: in `framex` (src/) and `framex-actors` (actors/src/), the
//! modules under any one parent (the crate root's top-level modules, `http`'s files,
//! …) use each other one way only.
//!
//! A module is a file (an inline `mod x { … }` belongs to its file). Every path a file
//! names — `crate::…`, `super::…`, `self::…`, a child module, an imported name, a
//! name from a glob import — is resolved, following re-exports (`pub use`), to the
//! file that defines the item; so two siblings that use each other through their
//! parent's re-exports are a circle. A private `use` is an edge by itself (a trait
//! imported for its methods never shows up as a path); a `pub use` is a re-export
//! only. Each file edge counts between the two siblings that hold its ends (a file of
//! `http/migrate/` using `server` is `http` → `server` at the crate root). A parent
//! and its own descendants are not siblings: a child using its parent's items through
//! `super::` while the parent composes its children is how Rust modules nest. Test
//! code (`#[cfg(test)]`) is left out: tests may reach anywhere.
//!
//! Its own test binary: it reads sources and needs nothing of the crates, so it
//! builds and runs in seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A module path from its crate's root (`["http", "body"]`); the root is `[]`.
type ModPath = Vec<String>;

/// Edges between numbered nodes, each with why it is there.
type Edges = BTreeMap<(usize, usize), String>;

/// What one module declares and names, as written.
#[derive(Default)]
struct Module {
    path: ModPath,
    /// Index of the file the module lives in.
    file: usize,
    children: BTreeSet<String>,
    /// Items defined here (functions, types, traits, constants, macros).
    items: BTreeSet<String>,
    /// Imported name → the path as written, and whether the import is a re-export.
    imports: BTreeMap<String, (Vec<String>, bool)>,
    /// Glob imports (`use x::*`), as written.
    globs: Vec<Vec<String>>,
    /// Paths named in code, as written, with the line they are on.
    refs: Vec<(Vec<String>, usize)>,
}

/// One crate's modules, loaded from its root file.
struct Crate {
    name: &'static str,
    files: Vec<PathBuf>,
    modules: Vec<Module>,
}

/// Whether attributes hold `#[cfg(test)]` (or a `cfg` that needs `test`).
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && matches!(&a.meta, syn::Meta::List(l) if {
                let t = l.tokens.to_string();
                t.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == "test")
                    && !t.contains("not")
            })
    })
}

/// Flattens a use tree into (name, path) imports and glob paths.
fn use_tree(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<(Option<String>, Vec<String>)>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_tree(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.last() {
                    out.push((Some(last.clone()), prefix.clone()));
                }
            } else {
                let mut p = prefix.clone();
                p.push(name.clone());
                out.push((Some(name), p));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            if r.ident != "self" {
                p.push(r.ident.to_string());
            }
            out.push((Some(r.rename.to_string()), p));
        }
        syn::UseTree::Glob(_) => out.push((None, prefix.clone())),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_tree(t, prefix, out);
            }
        }
    }
}

/// Collects the paths a piece of code names, into a module.
struct Refs<'m> {
    module: &'m mut Module,
}

impl Refs<'_> {
    fn import(&mut self, u: &syn::ItemUse) {
        let public = !matches!(u.vis, syn::Visibility::Inherited);
        let line = u.use_token.span.start().line;
        let mut out = Vec::new();
        use_tree(&u.tree, &mut Vec::new(), &mut out);
        for (name, path) in out {
            if !public {
                self.module.refs.push((path.clone(), line));
            }
            match name {
                Some(name) => {
                    self.module.imports.insert(name, (path, public));
                }
                None => self.module.globs.push(path),
            }
        }
    }

    /// Paths inside macro arguments: `crate::a::b`, `super::x`, `name::y`, `name`.
    fn tokens(&mut self, tokens: TokenStream) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tts.len() {
            match &tts[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) => {
                    let line = id.span().start().line;
                    let mut path = vec![id.to_string()];
                    while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(n))) =
                        (tts.get(i + 1), tts.get(i + 2), tts.get(i + 3))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        path.push(n.to_string());
                        i += 3;
                    }
                    self.module.refs.push((path, line));
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        let attrs = match i {
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(x) => &x.attrs,
            syn::Item::Use(x) => &x.attrs,
            syn::Item::Const(x) => &x.attrs,
            syn::Item::Static(x) => &x.attrs,
            syn::Item::Struct(x) => &x.attrs,
            syn::Item::Enum(x) => &x.attrs,
            syn::Item::Mod(x) => &x.attrs,
            _ => return syn::visit::visit_item(self, i),
        };
        if !is_test(attrs) {
            syn::visit::visit_item(self, i);
        }
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.import(u);
    }
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {
        // Modules are loaded as modules of their own.
    }
    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            let line = p.segments.first().map_or(0, |s| s.ident.span().start().line);
            let segs = p.segments.iter().map(|s| s.ident.to_string()).collect();
            self.module.refs.push((segs, line));
        }
        syn::visit::visit_path(self, p);
    }
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        syn::visit::visit_macro(self, m);
        self.tokens(m.tokens.clone());
    }
}

fn item_name(item: &syn::Item) -> Option<String> {
    Some(match item {
        syn::Item::Const(x) => x.ident.to_string(),
        syn::Item::Enum(x) => x.ident.to_string(),
        syn::Item::Fn(x) => x.sig.ident.to_string(),
        syn::Item::Macro(x) => x.ident.as_ref()?.to_string(),
        syn::Item::Static(x) => x.ident.to_string(),
        syn::Item::Struct(x) => x.ident.to_string(),
        syn::Item::Trait(x) => x.ident.to_string(),
        syn::Item::Type(x) => x.ident.to_string(),
        syn::Item::Union(x) => x.ident.to_string(),
        _ => return None,
    })
}

impl Crate {
    fn load(name: &'static str, root: &Path) -> Crate {
        let mut krate = Crate { name, files: Vec::new(), modules: Vec::new() };
        let dir = root.parent().expect("root file in a directory").to_path_buf();
        krate.load_file(root.to_path_buf(), Vec::new(), dir);
        krate
    }

    /// Loads the module at `path` from `file`; its child files are under `dir`.
    fn load_file(&mut self, file: PathBuf, path: ModPath, dir: PathBuf) {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        self.files.push(file);
        let file_idx = self.files.len() - 1;
        self.load_items(&ast.items, file_idx, path, dir);
    }

    fn load_items(&mut self, items: &[syn::Item], file: usize, path: ModPath, dir: PathBuf) {
        let idx = self.modules.len();
        self.modules.push(Module { path: path.clone(), file, ..Module::default() });
        let mut children = Vec::new();
        for item in items {
            if let Some(name) = item_name(item) {
                self.modules[idx].items.insert(name);
            }
            match item {
                syn::Item::Mod(m) if !is_test(&m.attrs) => {
                    let name = m.ident.to_string();
                    self.modules[idx].children.insert(name.clone());
                    children.push(m);
                }
                syn::Item::Mod(_) => {}
                other => Refs { module: &mut self.modules[idx] }.visit_item(other),
            }
        }
        for m in children {
            let name = m.ident.to_string();
            let mut child = path.clone();
            child.push(name.clone());
            let child_dir = dir.join(&name);
            match &m.content {
                Some((_, items)) => self.load_items(items, file, child, child_dir),
                None => {
                    let flat = dir.join(format!("{name}.rs"));
                    let file = if flat.exists() { flat } else { child_dir.join("mod.rs") };
                    self.load_file(file, child, child_dir);
                }
            }
        }
    }

    fn module(&self, path: &[String]) -> Option<usize> {
        self.modules.iter().position(|m| m.path == path)
    }

    /// The absolute path of `segs` as written in module `m`, if it names this crate.
    fn absolute(&self, m: usize, segs: &[String], depth: usize) -> Option<Vec<String>> {
        if depth > 16 {
            return None;
        }
        let module = &self.modules[m];
        let first = segs.first()?;
        let mut path = module.path.clone();
        let rest = match first.as_str() {
            "crate" => {
                path.clear();
                &segs[1..]
            }
            "self" => &segs[1..],
            "super" => {
                let supers = segs.iter().take_while(|s| *s == "super").count();
                path.truncate(path.len().checked_sub(supers)?);
                &segs[supers..]
            }
            name if module.children.contains(name) || module.items.contains(name) => segs,
            name => {
                if let Some((target, _)) = module.imports.get(name) {
                    let mut abs = self.import_target(m, target, depth + 1)?;
                    abs.extend_from_slice(&segs[1..]);
                    return Some(abs);
                }
                for glob in &module.globs {
                    let Some(g) = self.absolute(m, glob, depth + 1) else { continue };
                    if let Some(gm) = self.module(&g) {
                        let gmod = &self.modules[gm];
                        if gmod.children.contains(name) || gmod.items.contains(name) || gmod.imports.contains_key(name) {
                            let mut abs = g;
                            abs.extend_from_slice(segs);
                            return Some(abs);
                        }
                    }
                }
                return None;
            }
        };
        path.extend_from_slice(rest);
        Some(path)
    }

    /// An import's target as written in module `m` (a `use` path is relative to `m`).
    fn import_target(&self, m: usize, target: &[String], depth: usize) -> Option<Vec<String>> {
        let first = target.first()?;
        let module = &self.modules[m];
        if module.imports.get(first).is_some_and(|(t, _)| t.as_slice() == target) {
            // `use x;` of an extern crate (or the import itself): nothing of ours.
            return None;
        }
        self.absolute(m, target, depth)
    }

    /// The module defining what the absolute `path` names, and whether `path` names
    /// that module itself.
    fn locate(&self, path: &[String], depth: usize) -> Option<(usize, bool)> {
        let mut m = self.module(&[])?;
        for (i, seg) in path.iter().enumerate() {
            let module = &self.modules[m];
            if module.children.contains(seg) {
                let mut child = module.path.clone();
                child.push(seg.clone());
                m = self.module(&child)?;
                continue;
            }
            if module.items.contains(seg) || depth > 16 {
                return Some((m, false));
            }
            if let Some((target, _)) = module.imports.get(seg) {
                let mut abs = self.import_target(m, target, depth + 1)?;
                abs.extend_from_slice(&path[i + 1..]);
                return self.locate(&abs, depth + 1);
            }
            for glob in &module.globs {
                let Some(g) = self.absolute(m, glob, depth + 1) else { continue };
                let mut abs = g;
                abs.extend_from_slice(&path[i..]);
                if let Some(found) = self.locate(&abs, depth + 1) {
                    return Some(found);
                }
            }
            return Some((m, false));
        }
        Some((m, true))
    }

    /// File → file edges, each with the first reference that makes it.
    fn edges(&self) -> Edges {
        let mut edges = BTreeMap::new();
        for (m, module) in self.modules.iter().enumerate() {
            for (segs, line) in &module.refs {
                let Some(abs) = self.absolute(m, segs, 0) else { continue };
                let Some((target, names_module)) = self.locate(&abs, 0) else { continue };
                // A bare name that turns out to be a module is a variable, not a use.
                if segs.len() == 1 && names_module && !module.imports.contains_key(&segs[0]) {
                    continue;
                }
                let to = self.modules[target].file;
                if to != module.file {
                    edges
                        .entry((module.file, to))
                        .or_insert_with(|| format!("line {line}: {}", segs.join("::")));
                }
            }
        }
        edges
    }

    fn show(&self, file: usize, base: &Path) -> String {
        let rel = self.files[file].strip_prefix(base).unwrap_or(&self.files[file]);
        format!("{}:{}", self.name, rel.display())
    }
}

/// Strongly connected components of more than one node (Tarjan).
fn cycles(n: usize, edges: &Edges) -> Vec<Vec<usize>> {
    struct State {
        adj: Vec<Vec<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for w in s.adj[v].clone() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(i) if s.on_stack[w] => s.low[v] = s.low[v].min(i),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort_unstable();
                s.out.push(comp);
            }
        }
    }
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in edges.keys() {
        adj[a].push(b);
    }
    let mut s = State {
        adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

/// One circle through `comp`, starting at its first node: the shortest way back.
fn one_circle(comp: &[usize], edges: &Edges) -> Vec<usize> {
    let start = comp[0];
    let inside: BTreeSet<usize> = comp.iter().copied().collect();
    let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &(a, b) in edges.keys() {
            if a != v || !inside.contains(&b) {
                continue;
            }
            if b == start {
                let mut path = vec![v];
                let mut cur = v;
                while cur != start {
                    cur = prev[&cur];
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = prev.entry(b) {
                e.insert(v);
                queue.push_back(b);
            }
        }
    }
    vec![start]
}

/// The module path of each file (the module the file itself is).
fn file_modules(krate: &Crate) -> Vec<ModPath> {
    let mut paths = vec![ModPath::new(); krate.files.len()];
    for m in krate.modules.iter().rev() {
        paths[m.file] = m.path.clone();
    }
    paths
}

/// Describes every circle among the sibling modules of one crate, at every level.
fn describe_cycles(krate: &Crate, base: &Path) -> Vec<String> {
    let modules = file_modules(krate);
    // Parent module → (its children, child → child edges with the file edge behind each).
    let mut levels: BTreeMap<ModPath, (Vec<String>, Edges)> = BTreeMap::new();
    for ((from, to), why) in krate.edges() {
        let (a, b) = (&modules[from], &modules[to]);
        let common = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
        if common == a.len() || common == b.len() {
            continue; // a parent and its descendant: `super::` and composition
        }
        let (names, edges) = levels.entry(a[..common].to_vec()).or_default();
        let mut index = |name: &String| match names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                names.push(name.clone());
                names.len() - 1
            }
        };
        let (x, y) = (index(&a[common]), index(&b[common]));
        let why = format!("{} → {}, {why}", krate.show(from, base), krate.show(to, base));
        edges.entry((x, y)).or_insert(why);
    }
    let mut found = Vec::new();
    for (parent, (names, edges)) in &levels {
        let under = if parent.is_empty() { "the crate root".to_string() } else { parent.join("::") };
        for comp in cycles(names.len(), edges) {
            let circle = one_circle(&comp, edges);
            let mut text = format!(
                "{}: modules under {under} in a circle: {}",
                krate.name,
                comp.iter().map(|&i| names[i].as_str()).collect::<Vec<_>>().join(", ")
            );
            for (i, &x) in circle.iter().enumerate() {
                let y = circle[(i + 1) % circle.len()];
                text += &format!("\n    {} → {} ({})", names[x], names[y], edges[&(x, y)]);
            }
            found.push(text);
        }
    }
    found
}

fn crates() -> (PathBuf, Vec<Crate>) {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let krates = vec![
        Crate::load("framex", &base.join("src/lib.rs")),
        Crate::load("framex-actors", &base.join("actors/src/lib.rs")),
    ];
    (base, krates)
}

/// No two sibling modules of either crate are in an import circle; a failure names
/// each circle with the file, line and path that makes each step.
#[test]
fn no_import_circles() {
    let (base, krates) = crates();
    let found: Vec<String> = krates.iter().flat_map(|k| describe_cycles(k, &base)).collect();
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

/// The check sees what it must: both crates' files are loaded, and a reference
/// through a parent's re-export is followed to the file that defines the item.
#[test]
fn the_check_follows_reexports() {
    let (base, krates) = crates();
    let actors = &krates[1];
    assert!(actors.files.len() > 20 && krates[0].files.len() > 50, "sources not found");
    // `crate::Router` is re-exported by lib.rs from router.rs.
    let root = actors.module(&[]).expect("crate root");
    let abs = actors.absolute(root, &["crate".into(), "Router".into()], 0).expect("absolute");
    let (m, _) = actors.locate(&abs, 0).expect("located");
    assert_eq!(actors.show(actors.modules[m].file, &base), "framex-actors:actors/src/router.rs");
}

/// A made-up pair of sibling files that use each other through their parent is found.
#[test]
fn the_check_finds_a_circle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    write("lib.rs", "mod a;\nmod b;\npub use a::A;\npub use b::B;\n");
    write("a.rs", "pub struct A;\nfn f() -> crate::B { crate::B }\n");
    write("b.rs", "pub struct B;\nfn g() { let _ = super::A; }\n");
    let krate = Crate::load("made-up", &dir.path().join("lib.rs"));
    let found = describe_cycles(&krate, dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("a → b (made-up:a.rs → made-up:b.rs, line 2: crate::B)"), "{}", found[0]);
}

