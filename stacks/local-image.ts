import { Construct } from 'constructs';
import { Image } from '@cdktf/provider-docker/lib/image';
import { hashSources } from './source-hash';

export interface LocalImageProps {
  /** Image name and tag. */
  readonly name: string;
  /** Absolute build context. */
  readonly context: string;
  /** Dockerfile path relative to the context. */
  readonly dockerfile: string;
  /**
   * `--build-arg`s.
   * @default none
   */
  readonly buildArgs?: Record<string, string>;
  /** Absolute paths whose contents define the image (hashed into `triggers`). */
  readonly sources: string[];
  /** Keep the image on destroy. */
  readonly keep: boolean;
}

/** An image built from a local Dockerfile that rebuilds whenever its sources change. */
export class LocalImage extends Construct {
  readonly image: Image;

  constructor(scope: Construct, id: string, props: LocalImageProps) {
    super(scope, id);
    const sourceHash = hashSources(props.sources, props.context);
    this.image = new Image(this, 'image', {
      name: props.name,
      keepLocally: props.keep,
      buildAttribute: {
        context: props.context,
        dockerfile: props.dockerfile,
        buildArgs: props.buildArgs,
        label: { 'ws-notifications.source-hash': sourceHash },
      },
      triggers: { source_hash: sourceHash },
    });
  }

  /** Containers reference the id, not the name, so a rebuild replaces them. */
  get imageId(): string {
    return this.image.imageId;
  }
}

/** A pulled image (not built here). Pulled images stay on destroy: a download cache (and the offline stand-ins cannot be pulled again). */
export function pulledImage(scope: Construct, id: string, name: string): Image {
  return new Image(scope, id, { name, keepLocally: true });
}
