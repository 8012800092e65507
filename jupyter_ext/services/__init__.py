"""Services above the targets: the one run lifecycle (:mod:`.runs`), scheduling, cluster submission and the
Job pod's entry point. The CLI and the server call these; they never run or record a run themselves."""
