shared::main!(worker, ai_sweeper::Sweeper);
