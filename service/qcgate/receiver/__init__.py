"""The DICOM receiver: association policy, C-ECHO/C-STORE handlers and instance validation."""
