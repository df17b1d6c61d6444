shared::main!(worker, export_worker::Exporter);
