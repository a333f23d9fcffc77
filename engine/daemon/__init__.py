"""The local engine daemon (`recast-engine serve`): gRPC service, jobs, storage, security."""
