//! Lists an HDF5 file's tree as neggia-rs reads it: `cargo run -p neggia-rs --example ls FILE`.

use neggia::{File, Group, Link, Node};

fn walk(g: &Group, depth: usize) -> neggia::Result<()> {
    let pad = "  ".repeat(depth);
    for a in g.attributes()? {
        println!("{pad}@{} = {:?}", a.name, a.value.data);
    }
    for (name, link) in g.links()? {
        let mut hops = 0;
        let shown = match &link {
            Link::Hard(_) => String::new(),
            Link::Soft(t) => format!(" -> {t}"),
            Link::External { file, path } => format!(" -> {file}:{path}"),
        };
        match g.follow(&name, &link, &mut hops) {
            Ok(Node::Group(sub)) => {
                println!("{pad}{name}/{shown}");
                if matches!(link, Link::Hard(_)) {
                    walk(&sub, depth + 1)?;
                }
            }
            Ok(Node::Dataset(d)) => {
                let filters: Vec<u16> = d.filters().iter().map(|f| f.id).collect();
                println!(
                    "{pad}{name}{shown}: {:?} {} {:?} chunks {:?} filters {filters:?}",
                    d.shape(),
                    d.dtype().numpy(),
                    d.storage(),
                    d.chunks()
                );
            }
            Err(e) => println!("{pad}{name}{shown}: ERROR {e}"),
        }
    }
    Ok(())
}

fn main() {
    for path in std::env::args().skip(1) {
        println!("{path}:");
        let r = File::open(&path).and_then(|f| walk(&f.root(), 1));
        if let Err(e) = r {
            println!("  ERROR {e}");
        }
    }
}
