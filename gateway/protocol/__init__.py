"""What travels on the wire: media types, request/response models, problem documents."""
