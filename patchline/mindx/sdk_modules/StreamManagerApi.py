"""`from StreamManagerApi import StreamManagerApi, MxDataInput, …` for SDK applications run by
`python -m patchline.mindx`: the SDK's binding, implemented on patchline's runner."""

from patchline.mindx.api import StreamManagerApi  # noqa: F401
from patchline.mindx.values import (InProtobufVector, MetadataInputVector, MetadataOutputVector,  # noqa: F401
                                    MxBufferAndMetadataOutput, MxBufferInput, MxBufferOutput, MxDataInput,
                                    MxDataInputExt, MxDataOutput, MxMetadataInput, MxMetadataOutput, MxProtobufIn,
                                    MxProtobufOut, OutProtobufVector, RoiBox, RoiBoxVector, StringVector)
