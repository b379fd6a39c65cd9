// A non-ASCII identifier character (homoglyph): refused outside comments.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  wire а = 1'b0;
  assign y = a ^ b;
endmodule
