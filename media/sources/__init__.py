"""Where local media comes from: camera, microphone, screen, files, synthetic bots."""
