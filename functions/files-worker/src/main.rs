shared::main!(worker, files_worker::FilesWorker);
