//! Runner manager: runner metrics and the docker-machine store.
