"""Dataset folder formats, one writer per format, shared by the toy world and the assemble stage.

* :mod:`.veri` — the VeRi-776 layout (``image_{train,query,test}/``, ``name_*.txt``);
* :mod:`.vehicleid` — the VehicleID layout (``image/``, ``train_test_split/``, ``attribute/``);
* :mod:`.yolo` — a YOLO detection dataset (``images/``, ``labels/``, ``data.yaml``) for ultralytics;
* :mod:`.crop` — the vehicle box a Re-ID image is cut to.

Every writer is a context manager over :func:`data_manifests.atomic_dir`: the folder is filled under a temporary
name and swapped in whole when the block ends, so readers never see half an export. Callers decide what goes in
(which rows, their ids, frames and crop boxes); the writers own the file names, the folders and the list files.
"""
